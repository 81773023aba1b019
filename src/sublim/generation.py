"""Sampling backends behind one contract: prompts in, one completion string per prompt out.

* ``transformers`` -- batched ``generate`` on CPU or GPU (left padding, seeded per batch);
* ``vllm``         -- vLLM offline ``LLM.generate`` with per-request seeds (GPU clusters).

Both sample at the given temperature with no top-k/top-p truncation unless asked, so the
data is sample-then-filter as in the paper. ``throughput`` reports tokens per second.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from .errors import SublimError

BACKENDS = ("transformers", "vllm")


@dataclasses.dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    batch_size: int = 256


def generate(backend: str, model_dir, rendered_prompts: list[str], sampling: Sampling, *, threads=None):
    """Return ``(completions, stats)``; ``rendered_prompts`` already carry the chat template."""
    if backend == "transformers":
        return _generate_hf(model_dir, rendered_prompts, sampling, threads=threads)
    if backend == "vllm":
        return _generate_vllm(model_dir, rendered_prompts, sampling)
    raise SublimError(f"unknown generation backend {backend!r}; expected one of {BACKENDS}")


def _generate_hf(model_dir, prompts, sampling: Sampling, *, threads=None, model=None, tok=None):
    import torch
    from tqdm import tqdm

    from . import models

    if threads:
        torch.set_num_threads(threads)
    if model is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model, tok, _ = models.load(model_dir, dtype=dtype, device=device)
    tok.padding_side = "left"
    out: list[str] = []
    n_tokens = n_prompt_tokens = 0
    t0 = time.time()
    bs = sampling.batch_size
    for b in tqdm(range(0, len(prompts), bs), desc="generate", file=sys.stderr, mininterval=5):
        chunk = prompts[b : b + bs]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        torch.manual_seed(sampling.seed * 1_000_003 + b)
        with torch.no_grad():
            gen = model.generate(
                **enc,
                do_sample=sampling.temperature > 0,
                temperature=sampling.temperature if sampling.temperature > 0 else None,
                top_p=sampling.top_p,
                top_k=0,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new = gen[:, enc["input_ids"].shape[1] :]
        for row in new:
            ids = row.tolist()
            if tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id) + 1]
            n_tokens += len(ids)
            out.append(tok.decode(ids, skip_special_tokens=True))
        n_prompt_tokens += int(enc["attention_mask"].sum())
    dt = time.time() - t0
    stats = {
        "backend": "transformers",
        "device": str(model.device),
        "seconds": round(dt, 3),
        "generated_tokens": n_tokens,
        "prompt_tokens": n_prompt_tokens,
        "generated_tokens_per_s": round(n_tokens / dt, 1) if dt else None,
        "total_tokens_per_s": round((n_tokens + n_prompt_tokens) / dt, 1) if dt else None,
    }
    return out, stats


def _generate_vllm(model_dir, prompts, sampling: Sampling):
    """vLLM offline generation; each request gets its own seed, so output order is stable."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise SublimError("generation.backend=vllm but vllm is not installed (pip install vllm)") from e
    from . import models

    handle = models.resolve(model_dir)
    t0 = time.time()
    llm = LLM(model=str(handle.weights), seed=sampling.seed, dtype="auto")
    load_s = time.time() - t0
    params = [
        SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed * 1_000_003 + i,
        )
        for i in range(len(prompts))
    ]
    t1 = time.time()
    results = llm.generate(prompts, params, use_tqdm=True)
    dt = time.time() - t1
    out = [r.outputs[0].text for r in results]
    n_tok = sum(len(r.outputs[0].token_ids) for r in results)
    n_prompt = sum(len(r.prompt_token_ids) for r in results)
    import vllm

    stats = {
        "backend": "vllm",
        "vllm_version": vllm.__version__,
        "load_seconds": round(load_s, 3),
        "seconds": round(dt, 3),
        "generated_tokens": n_tok,
        "prompt_tokens": n_prompt,
        "generated_tokens_per_s": round(n_tok / dt, 1) if dt else None,
        "total_tokens_per_s": round((n_tok + n_prompt) / dt, 1) if dt else None,
    }
    return out, stats
