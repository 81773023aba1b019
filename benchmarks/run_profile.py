"""Where a finished run's time went: per rule, and the critical path against the wall time.

Reads a run directory after `snakemake` (or `./run.sh`) finished:

  * the Snakemake log (``.snakemake/log/*.snakemake.log``, the newest, or ``--log``): each job's
    start and finish times, so a job's time includes the interpreter, imports and model loading;
  * every artifact's manifest: the step, the seconds its body ran, and the model FLOPs it
    recorded (training: ``training.throughput``; generation and sampling: 2 x parameters x
    tokens), linked into the DAG by their ``inputs``.

It prints, per rule: jobs, job seconds (from the log), body seconds (the step function, from the
manifests), model-work seconds (the timed training loop, the sampler, an evaluation's scoring),
the rest per job (job - model work: interpreter start, imports, reading and writing), model
FLOPs and their share of the single-thread matmul rate measured in the same run with every
core running one such thread, the condition the jobs ran under (FLOPs over model-work
seconds; the rate of one thread alone is printed beside it). Run it on an idle machine.
Then the critical path (the longest chain of job seconds through the DAG) against the wall
time, and how busy the cores were.

    python benchmarks/run_profile.py                 # the run in this directory
    python benchmarks/run_profile.py /tmp/run --cores 2
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")


def parse_log(path: Path) -> tuple[dict, float]:
    """``{jobid: {rule, outputs, start, end}}`` and the log's first-to-last time span."""
    jobs: dict[str, dict] = {}
    now, first, last = None, None, None
    current = None
    for line in path.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if m:
            now = dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").timestamp()
            first = first if first is not None else now
            last = now
            current = None
            continue
        s = line.strip()
        m = re.match(r"^(?:local)?rule (\w+):$", s)
        if m:
            current = {"rule": m.group(1), "outputs": [], "start": now}
            continue
        if current is not None and s.startswith("output:"):
            current["outputs"] = [o.strip() for o in s.removeprefix("output:").split(",")]
        elif current is not None and s.startswith("jobid:"):
            jobs[s.split()[1]] = current
        m = re.match(r"^Finished jobid: (\d+)", s) or re.match(r"^Finished job (\d+)\.", s)
        if m and m.group(1) in jobs:
            jobs[m.group(1)]["end"] = now
    done = {k: v for k, v in jobs.items() if v.get("end") is not None and v.get("start") is not None}
    return done, (last - first) if first is not None else 0.0


def manifests(root: Path) -> dict[str, dict]:
    """``{artifact path: manifest}`` for every manifest under results/ and reports/."""
    out = {}
    for top in ("results", "reports"):
        for f in (root / top).rglob("*manifest.json"):
            if f.name == "manifest.json":
                art = f.parent
            elif f.name.endswith(".manifest.json"):
                art = f.with_name(f.name.removesuffix(".manifest.json"))
            else:
                continue
            try:
                out[str(art.relative_to(root))] = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
    return out


def n_params(ms: dict, model_path: str) -> int | None:
    m = ms.get(model_path.rstrip("/"))
    return m.get("n_parameters") if m else None


def model_flops(m: dict, ms: dict) -> float | None:
    """Model FLOPs the manifest records (None if it records none)."""
    tr = m.get("training", {}).get("throughput") if isinstance(m.get("training"), dict) else None
    if tr and tr.get("model_flops_per_s") and tr.get("seconds"):
        return tr["model_flops_per_s"] * tr["seconds"]
    stats = m.get("throughput") if m.get("step") == "generate" else m.get("sampling")
    if not stats:
        return None
    stats = stats if isinstance(stats, list) else [stats]
    model = next(iter(m.get("inputs", {}).values()), {}).get("path", "")
    n = n_params(ms, model)
    if not n:
        return None
    return sum(2.0 * n * (s.get("prompt_tokens", 0) + s.get("generated_tokens", 0)) for s in stats)


def compute_seconds(m: dict) -> float | None:
    """Seconds the manifest says went into model work: training's timed loop, the
    sampler's generation, or an evaluation's per-model scoring (loading included)."""
    tr = m.get("training", {}).get("throughput") if isinstance(m.get("training"), dict) else None
    if tr and tr.get("seconds") is not None:
        return tr["seconds"]
    if m.get("step") == "generate" and m.get("throughput"):
        stats = m["throughput"] if isinstance(m["throughput"], list) else [m["throughput"]]
        return sum(s.get("seconds", 0) + s.get("load_seconds", 0) for s in stats)
    if m.get("step") == "evaluate":
        per = m.get("models")
        if isinstance(per, dict):
            return sum(v.get("seconds", 0) for v in per.values())
        return m.get("seconds")
    return None


def matmul_rate_1thread(reps: int = 10) -> float:
    from _roofline import matmul_rate

    return matmul_rate(reps=reps, threads=1)


def matmul_rate_busy(cores: int) -> float:
    """The single-thread rate while every core runs one: the condition the run's jobs ran
    under (one thread each, all cores busy). On a VM whose vCPUs share physical cores (or
    a memory bus) it is well below the rate of one thread alone."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(cores) as pool:
        rates = pool.map(matmul_rate_1thread, [40] * cores)
    return min(rates)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default=".", help="the run's working directory")
    ap.add_argument("--log", help="the Snakemake log (default: the newest in .snakemake/log)")
    ap.add_argument("--cores", type=int, default=2, help="cores the run was given (default 2)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown (for README)")
    ap.add_argument("--json", type=Path, help="also write per-rule seconds and the wall time here")
    a = ap.parse_args(argv)
    root = Path(a.run)
    if a.log:
        log = Path(a.log)
    else:
        logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
        if not logs:
            print(f"error: no Snakemake log in {root / '.snakemake/log'}", file=sys.stderr)
            return 1
        # the newest log that ran jobs (a later `snakemake -n` or no-op run writes an empty one)
        log = next((p for p in reversed(logs) if parse_log(p)[0]), logs[-1])
    jobs, wall = parse_log(log)
    ms = manifests(root)
    alone = matmul_rate_1thread()
    peak = matmul_rate_busy(a.cores)

    # job seconds per output; manifests give the DAG edges
    job_of = {}
    for j in jobs.values():
        j["seconds"] = j["end"] - j["start"]
        for o in j["outputs"]:
            job_of[o.rstrip("/")] = j
    per = collections.defaultdict(
        lambda: {"jobs": 0, "job_s": 0.0, "body_s": 0.0, "compute_s": 0.0, "flops": 0.0, "flop_s": 0.0}
    )
    seen_jobs = set()
    for art, m in ms.items():
        j = job_of.get(art)
        if j is None or id(j) in seen_jobs:
            continue
        seen_jobs.add(id(j))
        r = per[j["rule"]]
        r["jobs"] += 1
        r["job_s"] += j["seconds"]
        r["body_s"] += m.get("wall_seconds") or 0.0
        r["compute_s"] += compute_seconds(m) or 0.0
        f = model_flops(m, ms)
        if f:
            r["flops"] += f
            tr = m.get("training", {}).get("throughput") if isinstance(m.get("training"), dict) else None
            r["flop_s"] += tr["seconds"] if tr else sum(
                s.get("seconds", 0) for s in (m.get("throughput") or [m.get("sampling") or {}])
                if isinstance(s, dict)
            )  # fmt: skip
    for j in jobs.values():  # jobs whose outputs carry no manifest (e.g. a tokenizer)
        if id(j) not in seen_jobs:
            seen_jobs.add(id(j))
            r = per[j["rule"]]
            r["jobs"] += 1
            r["job_s"] += j["seconds"]

    # the critical path: longest chain of job seconds over manifest input edges
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(art: str, depth=0) -> tuple[float, list[str]]:
        if art in memo:
            return memo[art]
        m, j = ms.get(art), job_of.get(art)
        own = j["seconds"] if j else 0.0
        best = (0.0, [])
        if m and depth < 200:
            for inp in m.get("inputs", {}).values():
                p = inp.get("path", "").rstrip("/") if isinstance(inp, dict) else ""
                if p and p != art:
                    best = max(best, longest(p, depth + 1), key=lambda x: x[0])
        memo[art] = (own + best[0], best[1] + ([f"{j['rule']}:{art}"] if j else []))
        return memo[art]

    crit = max((longest(a) for a in ms), key=lambda x: x[0], default=(0.0, []))
    total_job = sum(r["job_s"] for r in per.values())

    rows = sorted(per.items(), key=lambda kv: -kv[1]["job_s"])
    head = ["rule", "jobs", "job s", "body s", "model work s", "other s/job", "GFLOP", "share of busy-core matmul"]
    table = []
    for rule, r in rows:
        share = (r["flops"] / r["flop_s"] / peak) if r["flop_s"] else None
        table.append([
            rule, str(r["jobs"]), f"{r['job_s']:.0f}", f"{r['body_s']:.0f}",
            f"{r['compute_s']:.0f}" if r["compute_s"] else "-",
            f"{(r['job_s'] - r['compute_s']) / max(r['jobs'], 1):.1f}" if r["compute_s"] else "-",
            f"{r['flops'] / 1e9:.0f}" if r["flops"] else "-",
            f"{share:.0%}" if share is not None else "-",
        ])  # fmt: skip
    table.append(["total", str(sum(r["jobs"] for r in per.values())), f"{total_job:.0f}",
                  f"{sum(r['body_s'] for r in per.values()):.0f}",
                  f"{sum(r['compute_s'] for r in per.values()):.0f}", "", "", ""])  # fmt: skip
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        w = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w[i]) if i else h.ljust(w[i]) for i, h in enumerate(head)))
        for t in table:
            print("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(t)))
    print(f"\nmatmul rate measured now (float32 1024^3, one thread): {peak / 1e9:.1f} GFLOP/s with all "
          f"{a.cores} cores running one each (the shares' ceiling), {alone / 1e9:.1f} GFLOP/s alone")  # fmt: skip
    print(f"wall time (first to last log line): {wall:.0f} s = {wall / 60:.1f} min")
    print(f"job seconds in all: {total_job:.0f} s; cores busy {total_job / max(wall * a.cores, 1):.0%} "
          f"of {a.cores} x wall")  # fmt: skip
    print(f"critical path: {crit[0]:.0f} s ({crit[0] / max(wall, 1):.0%} of the wall time), "
          f"the floor with unlimited cores; with {a.cores} cores the floor is "
          f"max(critical path, job seconds / {a.cores}) = {max(crit[0], total_job / a.cores):.0f} s")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps({
            "run": str(root), "cores": a.cores, "wall_s": round(wall, 1), "job_s": round(total_job, 1),
            "critical_path_s": round(crit[0], 1), "matmul_1thread_flops": peak,
            "matmul_1thread_alone_flops": alone,
            "rules": {rule: {k: round(v, 2) for k, v in r.items()} for rule, r in rows},
        }, indent=1))  # fmt: skip
    shown = []
    for step in crit[1]:  # a job with several outputs appears once
        j = job_of[step.split(":", 1)[1]]
        if not shown or shown[-1] is not j:
            shown.append(j)
            print(f"  {step}  {j['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
