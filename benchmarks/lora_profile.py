"""Where a LoRA student's training step spends its time: torch.profiler over training.train.

The same model, examples and settings as ``benchmarks/lora_training.py`` (paper's LoRA: r=8,
alpha=8, all projections, batch 66); prints the step times (the first steps hold one-time
costs), the device's busy time against the wall time (a device idle most of a step means the
step is bound by the host: Python, kernel launches, synchronisation), and the operators and
kernels that take the most device and host time.

    python benchmarks/lora_profile.py --shape qwen2.5-7b            # on a GPU
    python benchmarks/lora_profile.py --shape qwen2.5-7b --tiny     # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from lora_training import setup
    from torch.profiler import ProfilerActivity, profile

    from sublim import training

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-7b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=66)
    ap.add_argument("--rows", type=int, default=20, help="operators listed per table")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    device, _, model, tok, _, examples, cfg = setup(None, a.shape, a.tiny, a.steps * a.batch_size, a.batch_size)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    t0 = time.time()
    with profile(activities=acts, record_shapes=False) as prof:
        training.train(model, examples, cfg, pad_id=tok.pad_token_id)
    wall = time.time() - t0
    ka = prof.key_averages()
    busy_us = None
    if device == "cuda":  # kernels and copies on the device, not the annotations that span them
        busy_us = sum(
            e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            for e in prof.events()
            if str(e.device_type).endswith("CUDA") and not getattr(e, "is_user_annotation", False)
        )
    print(f"\n{a.steps} steps of batch {a.batch_size} in {wall:.2f} s wall ({wall / a.steps:.3f} s/step)")
    if busy_us is not None:
        print(f"device busy {busy_us / 1e6:.2f} s = {busy_us / 1e6 / wall:.0%} of the wall time")
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    print(ka.table(sort_by=sort, row_limit=a.rows, max_name_column_width=60))
    print(ka.table(sort_by="cpu_time_total", row_limit=a.rows, max_name_column_width=60))
    if a.json:
        a.json.write_text(json.dumps({"wall_s": wall, "steps": a.steps, "batch_size": a.batch_size,
                                      "device_busy_s": None if busy_us is None else busy_us / 1e6},
                                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
