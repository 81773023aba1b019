"""What a manifest pays to hash a big input, with and without sublim's hash cache.

Every manifest lists its inputs with their SHA-256 (``manifest.sha256_path``). A local model
given by path (``reference: {kind: path}``; Qwen2.5-7B is about 15 GB) is an input of every
teacher, generation, student and evaluation manifest of a preset run, so without a cache each of
those jobs reads it whole. Files of ``manifest.CACHE_MIN_BYTES`` or more have their hashes
remembered by path and stat. This script writes one file of ``--mib`` MiB (random bytes),
waits until it counts as finished (2 s), then times in the same run:

  * hashing it with the cache off (every job before the cache), median of ``--repeats``;
  * the first hash with an empty cache (the one job that reads it: the hash plus one entry);
  * a hash answered by the cache (every later job), median of ``--repeats``;

and prints the seconds, the read rate of the plain hash and the ratio. The file is in the page
cache after the first read, so the plain hash here is the CPU's SHA-256 rate, a floor: a cold
read from a cluster's shared disk is slower still.

    python benchmarks/hash_cache.py [--mib 1024] [--repeats 3] [--dir /scratch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024, help="size of the test file in MiB")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the file (default: a temporary directory)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sublim import manifest

    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        f = Path(tmp) / "model.safetensors"
        with open(f, "wb") as out:
            for _ in range(a.mib):
                out.write(os.urandom(1 << 20))
        # the cache does not remember a file changed in the last 2 s (it may still be being written)
        time.sleep(max(0.0, manifest._RACY_SECONDS + 0.1 - (time.time() - f.stat().st_ctime)))

        def timed(env: str) -> tuple[float, str]:
            os.environ[manifest.CACHE_ENV] = env
            t0 = time.perf_counter()
            digest = manifest.sha256_file(f)
            return time.perf_counter() - t0, digest

        plain = [timed("off") for _ in range(a.repeats)]
        cache = str(Path(tmp) / "cache")
        first = timed(cache)
        hits = [timed(cache) for _ in range(a.repeats)]
        assert len({d for _, d in plain + [first] + hits}) == 1, "the cache gave another hash"
        p = statistics.median(t for t, _ in plain)
        h = statistics.median(t for t, _ in hits)
        print(f"file: {a.mib} MiB in {tmp}")
        print(f"plain hash (cache off), median of {a.repeats}: {p:8.3f} s  ({a.mib / p:,.0f} MiB/s)")
        print(f"first hash, empty cache:              {first[0]:8.3f} s")
        print(f"cached hash, median of {a.repeats}:           {h * 1000:8.3f} ms")
        per_job = 15e9 / (a.mib * 2**20 / p)
        print(f"ratio plain / cached: {p / h:,.0f}x; a 15 GB model at this rate: {per_job:.0f} s per job uncached")


if __name__ == "__main__":
    main()
