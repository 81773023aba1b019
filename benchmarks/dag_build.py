"""Benchmark: how long Snakemake takes to build each preset's whole DAG (``snakemake -n all``).

The paper matrix (Qwen2.5-7B preset: every animal x teacher seed x arm x mode x seed, every
evaluation variant) must build in seconds, so that ``snakemake fig_<name>`` or a dry run
is interactive. Each preset is dry-run ``--repeat`` times in a fresh empty directory (no
results, so every job is planned); the table gives the best time, the number of jobs, and
the ratio to Snakemake's own start-up floor (``snakemake --version`` in the same Python).

    python benchmarks/dag_build.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [ROOT / "config.yaml", ROOT / "tests" / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


def best_of(cmd, repeat, cwd=None) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=cwd)
        best, out = min(best, time.perf_counter() - t), res.stdout
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    floor, _ = best_of([sys.executable, "-m", "snakemake", "--version"], a.repeat)
    print(f"snakemake start-up floor (--version): {floor:.2f} s\n")
    print(f"{'preset':<36} {'jobs':>6} {'dry run s':>10} {'x floor':>8}")
    for path in PRESETS:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", tmp,
                   "-n", "all", "--configfile", str(path)]  # fmt: skip
            dt, out = best_of(cmd, a.repeat)
        m = re.search(r"^total\s+(\d+)$", out, re.M)
        print(f"{path.relative_to(ROOT).as_posix():<36} {m.group(1) if m else '?':>6} {dt:>10.2f} {dt / floor:>8.1f}")


if __name__ == "__main__":
    main()
