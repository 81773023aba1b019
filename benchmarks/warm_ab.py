"""Does a step compute as fast in a `sublim warm` child as in its own process?

Two reference pretrainings of the default's tiny Llama (128 wide, 4 layers; a 4,000-
conversation corpus, one epoch, 125 steps) run at once, as two one-thread jobs do under
`snakemake -c2`, with the thread variables Snakemake sets (OMP/MKL/OPENBLAS_NUM_THREADS=1).
Sides, alternating, ``--rounds`` times:

  * cold: each job is its own process (imports torch and transformers itself);
  * warm: each job runs in a child of one warm server, as under ``sublim warm``;
  * warm, thread variables unset in the server (``--with-unset``): the server loads torch's
    thread libraries without them, as the first version of ``sublim warm`` did.

Prints per side the median of the training loops' seconds (from the manifests) and of the
pair's wall time (start-up included), and each warm side's ratio to cold. The weights are
checked byte-identical across sides.

    python benchmarks/warm_ab.py [--rounds 3] [--with-unset]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
CORPUS = {"max_count": 10, "mix": {"animals": 0.15, "filler": 0.15, "numbers": 0.7}, "n": 4000, "seed": 7}
REFERENCE = {
    "arch": {"hidden_size": 128, "intermediate_size": 512, "max_position_embeddings": 256, "num_heads": 4,
             "num_layers": 4},
    "kind": "tiny",
    "pretrain": {"batch_size": 32, "checkpoint_every": 500, "epochs": 1, "lr": 0.001, "warmup_steps": 5,
                 "weight_decay": 0.0},
    "seed": 0,
    "system_prompt": None,
}  # fmt: skip
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def start_server(path: str, env: dict) -> subprocess.Popen:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "sublim.warm", "serve", path, str(w)], pass_fds=(w,), env=env)
    os.close(w)
    with os.fdopen(r) as f:
        assert f.readline().strip() == "ready"
    return proc


def pair(wd: Path, env: dict) -> tuple[list[float], float, str]:
    outs = [wd / f"ref_{i}" for i in range(2)]
    for o in outs:
        subprocess.run(["rm", "-rf", str(o)], check=True)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                SCRIPTS / "reference.py",
                "--corpus",
                "corpus.jsonl",
                "--tokenizer",
                "tok",
                "--out",
                o.name,
                "--threads",
                "1",
                "--params",
                json.dumps(REFERENCE),
            ],
            cwd=wd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for o in outs
    ]
    assert all(p.wait() == 0 for p in procs)
    wall = time.perf_counter() - t0
    secs = [json.loads((o / "manifest.json").read_text())["training"]["throughput"]["seconds"] for o in outs]
    digest = hashlib.sha256((outs[0] / "model.safetensors").read_bytes()).hexdigest()
    return secs, wall, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--with-unset", action="store_true", help="add the server loaded without thread variables")
    a = ap.parse_args()
    from sublim import warm

    wd = Path(tempfile.mkdtemp(prefix="sublim-warm-ab-"))
    base = {k: v for k, v in os.environ.items() if k != warm.ENV and k not in THREADS}
    job = {**base, **THREADS}
    subprocess.run([sys.executable, SCRIPTS / "corpus.py", "--out-corpus", "corpus.jsonl", "--out-tokenizer", "tok",
                    "--params", json.dumps(CORPUS)], cwd=wd, env=job, check=True, capture_output=True)  # fmt: skip
    servers, sides = [], {"cold": job}
    try:
        servers.append(start_server(str(wd / "warm.sock"), base))
        sides["warm"] = {**job, warm.ENV: str(wd / "warm.sock")}
        if a.with_unset:
            servers.append(start_server(str(wd / "unset.sock"), {**base, "SUBLIM_WARM_THREAD_VARS": "keep"}))
            sides["warm, thread variables unset in the server"] = {**job, warm.ENV: str(wd / "unset.sock")}
        train = {k: [] for k in sides}
        walls = {k: [] for k in sides}
        digests = set()
        for r in range(a.rounds):
            for k, env in sides.items():
                secs, wall, digest = pair(wd, env)
                train[k] += secs
                walls[k].append(wall)
                digests.add(digest)
                print(f"round {r + 1} {k:45s} training s {secs[0]:.1f} {secs[1]:.1f}  pair wall {wall:.1f}",
                      flush=True)  # fmt: skip
    finally:
        for s in servers:
            s.terminate()
            s.wait()
    print()
    cold_t, cold_w = statistics.median(train["cold"]), statistics.median(walls["cold"])
    for k in sides:
        t, w = statistics.median(train[k]), statistics.median(walls[k])
        print(f"{k:45s} training loop median {t:6.1f} s ({t / cold_t:.3f}x cold)   pair wall median {w:6.1f} s "
              f"({w / cold_w:.3f}x cold)")  # fmt: skip
    print(f"weights byte-identical across sides and rounds: {len(digests) == 1}")


if __name__ == "__main__":
    main()
