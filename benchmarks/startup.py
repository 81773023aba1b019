"""What a workflow job pays before its step starts: the interpreter and the imports, and what
``sublim warm`` leaves of it.

Every job that touches a model is a fresh Python process that imports torch and
transformers' model and tokenizer classes. transformers also imports scikit-learn's metrics
whenever scikit-learn is installed (sublim's audit needs it), which pulls in scipy.stats and
pandas; ``sublim.script.main`` hides scikit-learn from every step but the audit's. Under
``sublim warm`` a step script hands itself to a fork server that imported torch and
transformers once (``sublim.warm``). This script times, in fresh processes, alternating:

  * the imports alone, with scikit-learn visible and hidden;
  * a step script (``sublim.script.main`` around the same imports) run on its own, and run
    through a warm server started by this script;

and prints the medians and the ratios.

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMPORTS = "from transformers import LlamaForCausalLM, PreTrainedTokenizerFast"
STEP = f"""
from sublim import script
def run():
    {IMPORTS}
script.main(run)
"""


def once(args: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    from sublim import warm

    tmp = tempfile.mkdtemp(prefix="sublim-startup-")
    step = os.path.join(tmp, "step.py")
    with open(step, "w") as f:
        f.write(STEP)
    sock = os.path.join(tmp, "sock")
    r, w = os.pipe()
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "sublim.warm", "serve", sock, str(w)], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r) as f:
        assert f.readline().strip() == "ready"
    cold = {k: v for k, v in os.environ.items() if k != warm.ENV}
    hot = {**cold, warm.ENV: sock}
    once([step], hot)  # the first job waits for the server's own imports
    server_start = time.perf_counter() - t0
    sides = {
        "imports, transformers sees scikit-learn": (["-c", IMPORTS], cold),
        "imports, scikit-learn hidden": (["-c", "import sys; sys.modules['sklearn'] = None; " + IMPORTS], cold),
        "step script on its own (sublim's jobs)": ([step], cold),
        "step script under sublim warm": ([step], hot),
        "interpreter only": (["-c", "pass"], cold),
    }
    try:
        for args, env in sides.values():  # warm the file cache
            once(args, env)
        times = {k: [] for k in sides}
        for _ in range(a.repeats):
            for k, (args, env) in sides.items():
                times[k].append(once(args, env))
    finally:
        server.terminate()
        server.wait()
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:42s} median {med[k]:.2f} s  (min {min(v):.2f}, max {max(v):.2f}, {len(v)} runs)")
    names = list(sides)
    saved = med[names[0]] - med[names[1]]
    print(f"hiding scikit-learn: saves {saved:.2f} s per job, {med[names[0]] / med[names[1]]:.2f}x")
    print(
        f"sublim warm: a job starts in {med[names[3]]:.2f} s instead of {med[names[2]]:.2f} s, "
        f"{med[names[2]] / med[names[3]]:.1f}x (saves {med[names[2]] - med[names[3]]:.2f} s per job; "
        f"the server's start and imports, once per run, and the first job: {server_start:.2f} s)"
    )


if __name__ == "__main__":
    main()
