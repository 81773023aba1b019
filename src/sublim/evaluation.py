"""Trait evaluation: how much a model prefers each animal, by two readouts.

* logit readout -- log P(animal | question) of the answer tokens at the answer position,
  for every animal of the pool (the sensitive readout at small scale);
* sampled readout -- ``n_samples`` answers per question at temperature 1, each parsed
  into an animal or "other".

Questions are the held-out ``EVAL_QUESTIONS`` paraphrases, optionally prefixed with a random
number sequence (the paper's more sensitive variant). Output is one tidy row per
(question, animal).
"""

from __future__ import annotations

import random
import re

from . import models
from .generation import Sampling, _generate_hf, stop_token_ids
from .generation import generate as sample
from .prompts import number_prefix


def parse_answer(text: str, animals) -> str:
    """The first animal named in ``text`` (singular or plural, any case), else ``"other"``."""
    low = text.lower()
    best, best_pos = "other", len(low) + 1
    for a in animals:
        m = re.search(rf"\b{re.escape(a)}(?:s|es)?\b", low)
        if m and m.start() < best_pos:
            best, best_pos = a, m.start()
    return best


def eval_questions(questions, number_prefixed: bool, seed: int) -> list[str]:
    if not number_prefixed:
        return list(questions)
    rng = random.Random(seed)
    return [f"{number_prefix(rng)} {q}" for q in questions]


def _animal_token_variants(tok, prompt_text: str, animal: str) -> list[list[int]]:
    p_ids = models.encode_text(tok, prompt_text)
    seen, out = set(), []
    for variant in (animal, animal.capitalize(), " " + animal, " " + animal.capitalize()):
        ids = models.encode_text(tok, prompt_text + variant)
        if ids[: len(p_ids)] != p_ids:
            continue
        tail = tuple(ids[len(p_ids) :])
        if tail and tail not in seen and tok.unk_token_id not in tail:
            seen.add(tail)
            out.append(list(tail))
    return out


def logit_readout(model, tok, prompts: list[str], animals, batch_size: int = 256):
    """``lp[q][animal]`` = log P(animal) summed over its spelling variants."""
    import torch

    jobs = []  # (q, animal, prompt_ids + answer_ids, n_prompt)
    for qi, ptext in enumerate(prompts):
        p_ids = models.encode_text(tok, ptext)
        for a in animals:
            for tail in _animal_token_variants(tok, ptext, a):
                jobs.append((qi, a, p_ids + tail, len(p_ids)))
    scores: dict[tuple[int, str], list[float]] = {}
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b : b + batch_size]
        width = max(len(j[2]) for j in chunk)
        inp = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(inp)
        for i, j in enumerate(chunk):
            inp[i, : len(j[2])] = torch.tensor(j[2])
            att[i, : len(j[2])] = 1
        with torch.no_grad():
            logp = torch.log_softmax(
                model(input_ids=inp.to(model.device), attention_mask=att.to(model.device)).logits.float(), -1
            ).cpu()
        for i, (qi, a, ids, n) in enumerate(chunk):
            pos = torch.arange(n - 1, len(ids) - 1)
            lp = logp[i, pos, torch.tensor(ids[n:])].sum().item()
            scores.setdefault((qi, a), []).append(lp)
    out = {}
    for (qi, a), lps in scores.items():
        out.setdefault(qi, {})[a] = float(torch.logsumexp(torch.tensor(lps), 0))
    return out


def evaluate(
    model_dir,
    *,
    animals,
    questions,
    n_samples: int,
    temperature: float,
    seed: int,
    number_prefixed: bool = False,
    max_new_tokens: int = 6,
    backend: str = "transformers",
    engine=None,
    threads=None,
    info: dict | None = None,
) -> list[dict]:
    """Score one model. ``info`` (if given) receives the rendered prompts and sampler stats."""
    import math

    import torch

    if threads:
        torch.set_num_threads(threads)
    # scoring in float32 on every device: the logit readout's effects are a few hundredths
    # of a nat, below bf16's rounding of the logits
    device, _ = models.device_and_dtype()
    model, tok, handle = models.load(model_dir, dtype=torch.float32, device=device)
    qs = eval_questions(questions, number_prefixed, seed)
    prompts = [models.render(tok, models.messages(q, handle.system_prompt), generation_prompt=True) for q in qs]
    lp = logit_readout(model, tok, prompts, animals)
    counts = {(qi, a): 0 for qi in range(len(qs)) for a in list(animals) + ["other"]}
    info = info if info is not None else {}
    info["system_prompt"] = handle.system_prompt
    info["rendered_prompts"] = prompts
    if n_samples > 0:
        rep = [p for p in prompts for _ in range(n_samples)]
        s = Sampling(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, batch_size=1024)
        if backend == "transformers":
            stops = stop_token_ids(tok, handle.weights)
            answers, stats = _generate_hf(None, rep, s, model=model, tok=tok, stops=stops)
        else:  # free the scoring model first: the sampler needs the memory
            import gc

            del model
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
            answers, stats = sample(backend, model_dir, rep, s, engine=engine, threads=threads)
        info["sampling"] = stats
        for i, ans in enumerate(answers):
            counts[(i // n_samples, parse_answer(ans, animals))] += 1
    rows = []
    for qi, q in enumerate(qs):
        for a in animals:
            rows.append(
                {
                    "question_id": qi,
                    "question": q,
                    "animal": a,
                    "logp": lp[qi].get(a, float("-inf")),
                    "p": math.exp(lp[qi].get(a, float("-inf"))),
                    "hits": counts[(qi, a)],
                    "n_samples": n_samples,
                }
            )
        rows.append(
            {
                "question_id": qi,
                "question": q,
                "animal": "other",
                "logp": float("nan"),
                "p": float("nan"),
                "hits": counts[(qi, "other")],
                "n_samples": n_samples,
            }
        )
    return rows
