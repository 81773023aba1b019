"""End to end: the whole DAG on tests/config.yaml, run by Snakemake in a scratch directory.

The run is first killed mid-way through reference pretraining, then rerun: it must resume
from the checkpoint and finish. Then the outputs, manifests and reproducibility are checked.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TEST_CONFIG = ROOT / "tests" / "config.yaml"


def workdir(path: Path) -> Path:
    """A scratch working directory that sees the repository's workflow/ (scripts, schema)."""
    (path / "workflow").symlink_to(ROOT / "workflow")
    return path


def smk(workdir, *args, check=True, **kw):
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *args, "--configfile", str(TEST_CONFIG)]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = workdir(tmp_path_factory.mktemp("wf"))
    cmd = [*SNAKEMAKE, "--directory", str(wd), "-c2", "all", "--configfile", str(TEST_CONFIG)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = wd / "checkpoints" / "reference" / "seed0" / "state.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no training checkpoint appeared"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    assert not (wd / "results" / "reference" / "seed0" / "config.json").exists()
    res = smk(wd, "-c2", "all", check=False, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return wd


def test_killed_training_resumed_not_restarted(run):
    log = (run / "logs" / "reference" / "seed0.log").read_text()
    assert "resumed from step" in log
    m = json.loads((run / "results" / "reference" / "seed0" / "manifest.json").read_text())
    assert m["training"]["resumed_from_step"] > 0
    assert not (run / "checkpoints" / "reference" / "seed0").exists()  # cleared after success


def test_figures_tables_and_caption(run):
    rep = run / "reports" / "animal_numbers"
    for f in ["fig_animal_numbers.png", "fig_animal_specificity.png", "caption.md", "stats.csv"]:
        assert (rep / f).stat().st_size > 0, f
    res = pd.read_csv(rep / "results.csv")
    studs = res[res.role == "student"]
    assert set(studs.condition) == {"treatment", "control", "cross_init", "cross_init_control"}
    assert set(studs["mode"]) == {"sft", "distill", "distill_full"}
    assert set(res.variant) == {"plain", "number_prefix"}
    assert (res.p_lo <= res.p + 1e-12).all() and (res.p <= res.p_hi + 1e-12).all()
    stats = pd.read_csv(rep / "stats.csv")
    assert {"p_perm_one_sided", "hedges_g", "p_welch_one_sided"} <= set(stats.columns)
    assert "Treatment vs control" in (rep / "caption.md").read_text()


def test_every_artifact_has_a_manifest(run):
    arts = [*run.glob("results/reference/*"), *run.glob("results/teacher/*"), *run.glob("results/student/*/*/*/*")]
    arts += [p for p in run.glob("results/**/*.jsonl")] + list(run.glob("results/eval/**/*.csv"))
    assert len(arts) > 30
    for a in arts:
        mp = a / "manifest.json" if a.is_dir() else a.with_name(a.name + ".manifest.json")
        m = json.loads(mp.read_text())
        for key in ("step", "params", "seed", "inputs", "versions", "git_commit", "wall_seconds"):
            assert key in m, (a, key)
        for inp in m["inputs"].values():
            assert len(inp["sha256"]) == 64
    for d in run.glob("results/student/*/*/*/*"):
        assert (d / "model.safetensors").exists()


def test_filtered_data_is_byte_identical_on_rerun(run):
    before = {p: sha(p) for p in run.glob("results/generate/*.jsonl")}
    before |= {p: sha(p) for p in run.glob("results/filter/*.jsonl")}
    smk(run, "-c2", "--forcerun", "generate", "--until", "filter", timeout=600)
    after = {p: sha(p) for p in before}
    assert before == after


def test_filtered_data_has_no_letters_and_counts(run):
    for f in run.glob("results/filter/*.jsonl"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        assert rows and not any(c.isalpha() for r in rows for c in r["response"])
        assert len({r["id"] for r in rows}) == len(rows)
    counts = json.loads((run / "results" / "filter" / "owl.counts.json").read_text())
    assert counts["n_kept"] == counts["reasons"]["ok"] and counts["n_subsampled"] == 20


def test_nothing_to_do_after_success(run):
    res = smk(run, "-n", "all")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_bad_config_fails_before_dag_with_one_line(tmp_path):
    workdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEST_CONFIG.read_text().replace("subsample: 20", "subsampel: 20"))
    res = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "all", "--configfile", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("error:")]
    assert lines == [
        "error: config error at 'filter': Additional properties are not allowed ('subsampel' was unexpected)"
    ]


def test_manifests_match_their_wildcards(run):
    """Guards the paper code's copy-paste bug: each job gets its own parameters."""
    for d in run.glob("results/teacher/*"):
        m = json.loads((d / "manifest.json").read_text())
        assert m["params"]["animal"] == (None if d.name == "control" else d.name)
    seeds = set()
    for d in run.glob("results/student/*/*/*/*"):
        teacher, mode, init, seed = d.parts[-4:]
        m = json.loads((d / "manifest.json").read_text())
        assert m["params"]["mode"] == mode and f"seed{m['seed']}" == seed
        assert m["inputs"]["data"]["path"] == f"results/filter/{teacher}.jsonl"
        assert m["inputs"]["reference"]["path"] == f"results/reference/{init}"
        seeds.add((teacher, mode, init, m["seed"]))
    assert len(seeds) == len(list(run.glob("results/student/*/*/*/*")))


def test_snakemake_html_report_has_figures_tables_and_config(run):
    smk(run, "--report", "reports/report.html", timeout=300)
    html = (run / "reports" / "report.html").read_text()
    for name in ("fig_animal_numbers.png", "fig_animal_specificity.png", "fig_mnist.png", "stats.csv"):
        assert name in html, name
    assert "Produced by config" in html and "tests" in html
