"""`sublim audit` at scale: time per stage and peak memory for N responses per data set.

Synthetic number responses (two slightly different number distributions, so the detectors
have something to find) over the embedded default's own prompts, audited with the data
detector and, given ``--reference`` (e.g. results/reference/seed0 after ./run.sh), the
reference detector. Prints each stage's seconds, responses per second, the peak resident
memory of the process, and the matmul rate measured in the same run against the model
scoring's rate. No timed test: run it by hand.

    python benchmarks/audit.py --n 100000 --reference results/reference/seed0
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _roofline import matmul_rate  # noqa: E402


def write_data(path: Path, n: int, seed: int, tilt: float) -> None:
    from sublim.prompts import make_prompts

    rng = np.random.default_rng(seed)
    prompts = make_prompts(min(n, 30000), 0, 10)
    weights = np.exp(tilt * (np.arange(1000) % 7 == 0))  # numbers divisible by 7 a little likelier
    weights /= weights.sum()
    with path.open("w") as f:
        for i in range(n):
            k = int(rng.integers(3, 11))
            nums = rng.choice(1000, size=k, p=weights)
            f.write(json.dumps({"id": i, "prompt": prompts[i % len(prompts)].text,
                                "response": ", ".join(map(str, nums))}) + "\n")  # fmt: skip


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="responses per data set")
    ap.add_argument("--reference", help="a model directory: also run the reference detector")
    ap.add_argument("--tilt", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--permutations", type=int, default=999)
    a = ap.parse_args()

    import torch

    from sublim import audit

    torch.set_num_threads(a.threads)
    peak = matmul_rate()
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        t = time.time()
        write_data(td / "data.jsonl", a.n, 1, a.tilt)
        write_data(td / "control.jsonl", a.n, 2, 0.0)
        print(f"wrote 2 x {a.n} responses in {time.time() - t:.1f} s; peak memory so far {peak_mib():.0f} MiB")
        cfg = audit.AuditConfig(n_permutations=a.permutations)
        t = time.time()
        dets = ["data"] + (["reference"] if a.reference else [])
        s = audit.audit(td / "data.jsonl", td / "control.jsonl", td / "out", reference=a.reference, detectors=dets,
                        cfg=cfg, threads=a.threads, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
        wall = time.time() - t
    print(audit.format_table(s))
    print(s["verdict"])
    print()
    print("| stage | seconds | responses/s |")
    print("|---|---|---|")
    for stage, sec in [("data detector (fit + score)", s["detectors"]["data"]["seconds"]),
                       ("reference scoring (model forward)", s["detectors"].get("reference_scoring_seconds")),
                       ("reference detector (fit + score)", s["detectors"].get("reference", {}).get("seconds")),
                       ("whole audit", wall)]:  # fmt: skip
        if sec is not None:
            print(f"| {stage} | {sec:.1f} | {2 * a.n / max(sec, 1e-9):.0f} |")
    print(f"\npeak resident memory: {peak_mib():.0f} MiB (budget 1024 MiB); matmul rate "
          f"{peak / 1e9:.0f} GFLOP/s (float32, {a.threads} thread(s))")  # fmt: skip
    if a.reference and s["detectors"].get("reference_scoring_seconds"):
        rs = s["detectors"]["reference_scoring_seconds"]
        tokens = s["detectors"]["reference_tokens"]
        flops = 2 * s["detectors"]["reference_params"] * tokens
        print(f"reference scoring: {tokens} tokens, {flops / rs / 1e9:.1f} GFLOP/s of model FLOPs "
              f"= {flops / rs / peak:.0%} of the measured matmul rate")  # fmt: skip


if __name__ == "__main__":
    main()
