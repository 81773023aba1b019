"""What a step's code version (sublim.codeversion) costs: computed afresh in a new process
(parsing and tokenizing the package) against remembered (the hash cache's entry, checked by the
package's file stats), for one step script and for every one (what Snakemake's process pays
when it parses the workflow).

    python benchmarks/code_version.py [--repeat 3]

Each measurement runs in its own interpreter, so no in-process cache carries over; the
remembered case runs after a fresh one has written its entry. The cache is a temporary
directory ($SUBLIM_HASH_CACHE), so the user's own is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "workflow" / "scripts").glob("*.py") if p.name != "export_dvc.py")
PROBE = """
import json, sys, time
from sublim import codeversion
paths = sys.argv[1:]
t = time.perf_counter()
versions = [codeversion.code_version(p) for p in paths]
print(json.dumps({"seconds": time.perf_counter() - t, "versions": versions}))
"""


def once(paths: list[Path], cache: str) -> dict:
    env = {**os.environ, "SUBLIM_HASH_CACHE": cache}
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths)], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    student = ROOT / "workflow" / "scripts" / "student.py"
    rows = []
    for label, paths in (("one script (student.py)", [student]), (f"all {len(SCRIPTS)} step scripts", SCRIPTS)):
        fresh, remembered = [], []
        for _ in range(a.repeat):
            with tempfile.TemporaryDirectory() as cache:
                f = once(paths, cache)
                r = once(paths, cache)  # the entry the fresh run wrote (or a fresh run again, if racy)
                assert f["versions"] == r["versions"]
                fresh.append(f["seconds"])
                remembered.append(r["seconds"])
        rows.append((label, statistics.median(fresh), statistics.median(remembered)))
    print(f"{'what':<28} {'fresh s':>9} {'remembered s':>13} {'ratio':>7}")
    for label, f, r in rows:
        print(f"{label:<28} {f:>9.3f} {r:>13.4f} {f / r:>7.1f}")
    print(f"(median of {a.repeat} runs each; remembered: no file of the package changed in the last 2 s)")


if __name__ == "__main__":
    main()
