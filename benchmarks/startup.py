"""What a workflow job pays before its step starts: the interpreter and the imports.

Every job that touches a model is a fresh Python process that imports torch and
transformers' model and tokenizer classes. transformers also imports scikit-learn's metrics
whenever scikit-learn is installed (sublim's audit needs it), which pulls in scipy.stats and
pandas; ``sublim.script.main`` hides scikit-learn from every step but the audit's. This script
times both, in fresh processes, alternating, and prints the medians and their ratio.

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = "from transformers import LlamaForCausalLM, PreTrainedTokenizerFast"
SIDES = {
    "transformers sees scikit-learn": IMPORTS,
    "sublim's jobs (scikit-learn hidden)": "import sys; sys.modules['sklearn'] = None; " + IMPORTS,
    "interpreter only": "pass",
}


def once(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    for code in SIDES.values():  # warm the file cache
        once(code)
    times = {k: [] for k in SIDES}
    for _ in range(a.repeats):
        for k, code in SIDES.items():
            times[k].append(once(code))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:40s} median {med[k]:.2f} s  (min {min(v):.2f}, max {max(v):.2f}, {len(v)} runs)")
    a_, b_ = list(SIDES)[:2]
    print(f"saved per job: {med[a_] - med[b_]:.2f} s; ratio {med[a_] / med[b_]:.2f}x")


if __name__ == "__main__":
    main()
