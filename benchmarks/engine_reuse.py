"""A step's attempts on one model: one engine for all of them against one per attempt.

The generate step asks a prompt again while its answer fails the filter
(``generation.attempts``: 12 in the default, 6 in the Qwen preset, 40-200 for SmolLM2, whose
answers rarely follow the number format). Before session 16 every attempt was a call of its
own, and with vLLM every call starts an engine: seconds on a CPU, a minute or more on a GPU
(weights, KV-cache allocation, CUDA-graph capture). ``generation.Session`` keeps one engine
(or one loaded transformers model) for the step. This script runs the same attempts loop
both ways, on the same prompts and seeds, in one run, and prints each side's seconds (engine
starts included), the ratio, the prompts kept per attempt, and whether the answers are the
same bytes (vLLM's prefix cache serves a prompt asked again from the earlier attempt's keys
and values: the same numbers up to floating-point rounding).

    python benchmarks/engine_reuse.py --model results/reference/seed0 --backend vllm --n 300 --attempts 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def attempts_loop(call, prompts, attempts: int, seed: int, sampling_kw: dict):
    from sublim.design import step_seed
    from sublim.generation import Sampling
    from sublim.modalities import numbers

    params = {"max_count": 10, "banned": []}
    pending, answers, kept = list(range(len(prompts))), {}, []
    for a in range(attempts):
        if not pending:
            break
        s = Sampling(seed=seed if a == 0 else step_seed(seed, "attempt", a), **sampling_kw)
        out, _ = call([prompts[i] for i in pending], s)
        failed = []
        for i, c in zip(pending, out):
            answers[(i, a)] = c
            if not numbers.check(c, params)[0]:
                failed.append(i)
        kept.append(len(pending) - len(failed))
        pending = failed
    return answers, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="results/reference/seed0")
    ap.add_argument("--backend", default="vllm", choices=["vllm", "kvcache", "transformers"])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--attempts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-fraction", type=float, default=0.3, help="vLLM gpu_memory_utilization (on a CPU: of RAM)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from transformers import AutoTokenizer

    from sublim import models
    from sublim.generation import Session, VllmEngine, generate
    from sublim.modalities import numbers

    handle = models.resolve(a.model)
    tok = AutoTokenizer.from_pretrained(handle.weights)
    prompts = [models.render(tok, models.messages(p, handle.system_prompt), generation_prompt=True)
               for p in numbers.prompts(a.n, a.seed, {"max_count": 10})]  # fmt: skip
    kw = {"temperature": 1.0, "max_new_tokens": a.max_new_tokens, "batch_size": 128}
    engine = VllmEngine(gpu_memory_utilization=a.memory_fraction, enforce_eager=True) if a.backend == "vllm" else None

    t0 = time.perf_counter()
    per_call, kept_a = attempts_loop(lambda p, s: generate(a.backend, a.model, p, s, threads=a.threads, engine=engine),
                                     prompts, a.attempts, a.seed, kw)  # fmt: skip
    t_per_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Session(a.backend, a.model, threads=a.threads, engine=engine) as s:
        one, kept_b = attempts_loop(s.generate, prompts, a.attempts, a.seed, kw)
    t_one = time.perf_counter() - t0
    same = per_call == one
    print(f"{a.backend}, {a.n} prompts, up to {a.attempts} attempts, {a.threads} thread(s), model {a.model}")
    print(f"{'engine':<28} {'seconds':>8}  kept per attempt")
    print(f"{'one per attempt (before)':<28} {t_per_call:8.1f}  {kept_a}")
    print(f"{'one per step (Session)':<28} {t_one:8.1f}  {kept_b}")
    print(f"ratio: {t_per_call / t_one:.2f}x; answers the same bytes: {'yes' if same else 'no'}")
    if not same:
        diff = sum(per_call.get(k) != one.get(k) for k in set(per_call) | set(one))
        print(f"  {diff} of {len(set(per_call) | set(one))} (prompt, attempt) answers differ")


if __name__ == "__main__":
    main()
