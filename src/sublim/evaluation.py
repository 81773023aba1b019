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
from .generation import Sampling, _generate_hf, _generate_kv, stop_token_ids
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


def answer_tails(tok, prompts: list[str], animals) -> list[list[tuple[str, list[int]]]]:
    """Per prompt: ``(animal, answer ids)`` for every spelling variant of every animal."""
    return [[(a, t) for a in animals for t in _animal_token_variants(tok, p, a)] for p in prompts]


def option_logp(lp: dict, words) -> float:
    """log P(an option) from one question's ``logit_readout`` row: its words' probabilities
    summed (one word: its own value; none read: -inf)."""
    import torch

    vals = [lp[w] for w in words if w in lp]
    if not vals:
        return float("-inf")
    if len(vals) == 1:
        return float(vals[0])
    return float(torch.logsumexp(torch.tensor(vals), 0))


def logit_readout(model, tok, prompts: list[str], animals, row_budget: int = 256, tails=None):
    """``lp[q][animal]`` = log P(animal) summed over its spelling variants.

    Each question's prompt runs once (left-padded batches, KV cache); an answer's first token
    is read at the prompt's last position, and the rest of a multi-token answer continues
    from the prompt's cached keys and values, so no prompt is computed twice.

    ``tails`` (optional, one per prompt): each prompt's ``(animal, answer ids)`` pairs,
    computed once (``answer_tails``) from shorter prompts that end as these do (the question
    alone, where these put examples before it); tokenising 80 spellings after a long prompt
    costs more than its forward pass. The first prompt is checked against its stand-in: a
    mismatch falls back to tokenising after the prompts themselves."""
    import torch
    from transformers import DynamicCache

    if tails is not None and prompts:
        if len(tails) != len(prompts):
            raise ValueError("tails must give one list per prompt")
        if answer_tails(tok, prompts[:1], animals)[0] != tails[0]:
            tails = None
    if tails is None:
        tails = answer_tails(tok, prompts, animals)
    per_q = [(models.encode_text(tok, p), t) for p, t in zip(prompts, tails)]  # prompt ids, its answers
    widest = max((len(t) for _, t in per_q), default=1) or 1
    q_batch = max(1, row_budget // widest)
    dev = model.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    scores: dict[tuple[int, str], list[float]] = {}
    for b in range(0, len(per_q), q_batch):
        chunk = per_q[b : b + q_batch]
        width = max(len(p) for p, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, _) in enumerate(chunk):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                        use_cache=True, logits_to_keep=1)  # fmt: skip
        first = torch.log_softmax(out.logits[:, -1].float(), -1).cpu()
        rows = []  # answers longer than one token: (question in chunk, animal, answer ids)
        for i, (_, tails) in enumerate(chunk):
            for a, t in tails:
                if len(t) == 1:
                    scores.setdefault((b + i, a), []).append(first[i, t[0]].item())
                else:
                    rows.append((i, a, t))
        if rows:
            sel = torch.tensor([r[0] for r in rows], device=dev)
            cache.batch_select_indices(sel)  # each row continues its own question's prompt
            cont_w = max(len(t) for _, _, t in rows) - 1
            cont = torch.full((len(rows), cont_w), pad, dtype=torch.long)
            cmask = torch.zeros_like(cont)
            for r, (_, _, t) in enumerate(rows):  # right-padded: padding comes after, unread
                cont[r, : len(t) - 1] = torch.tensor(t[:-1])
                cmask[r, : len(t) - 1] = 1
            cont, cmask = cont.to(dev), cmask.to(dev)
            cpos = pos[sel, -1:] + 1 + torch.arange(cont_w, device=dev)[None]
            with torch.no_grad():
                logits = model(input_ids=cont, attention_mask=torch.cat([mask[sel], cmask], -1), position_ids=cpos,
                               past_key_values=cache, use_cache=True).logits  # fmt: skip
            logp = torch.log_softmax(logits.float(), -1).cpu()
            for r, (i, a, t) in enumerate(rows):
                lp = first[i, t[0]] + logp[r, torch.arange(len(t) - 1), torch.tensor(t[1:])].sum()
                scores.setdefault((b + i, a), []).append(lp.item())
    out_lp = {}
    for (qi, a), lps in scores.items():
        out_lp.setdefault(qi, {})[a] = float(torch.logsumexp(torch.tensor(lps), 0))
    return out_lp


def sample_answers(model, tok, handle, model_dir, prompts, sampling, backend, *, engine=None, threads=None):
    """Sampled answers to ``prompts`` (rendered) and the sampler's stats. On a CPU backend the
    loaded scoring ``model`` samples too; for vLLM, which loads its own copy, the caller drops
    its model first and passes None, and its memory is released here."""
    if backend in ("kvcache", "transformers"):
        run = _generate_kv if backend == "kvcache" else _generate_hf
        return run(None, prompts, sampling, model=model, tok=tok, stops=stop_token_ids(tok, handle.weights))
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return sample(backend, model_dir, prompts, sampling, engine=engine, threads=threads)


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
    backend: str = "kvcache",
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
        if backend not in ("kvcache", "transformers"):
            model = None  # vLLM loads its own copy: free the scoring model first
        answers, stats = sample_answers(model, tok, handle, model_dir, rep, s, backend, engine=engine, threads=threads)
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
