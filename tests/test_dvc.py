"""DVC: dvc.yaml follows the Snakemake DAG; a recorded run round-trips through a remote.

Here: dvc.yaml is in sync with the Snakefile, and `dvc repro` runs one teacher's chain. The
recorded run's round trip (record, push, clone, pull, tamper, check out) is in
tests/test_workflow.py, on the run it checks (one workflow run for both).
"""

import sys

from dvcutil import ROOT, TESTCFG, sh


def test_dvc_yaml_is_in_sync_with_the_snakefile():
    res = sh(ROOT, sys.executable, "workflow/scripts/export_dvc.py", "--check", check=False)
    assert res.returncode == 0, res.stderr


def test_dvc_repro_runs_the_same_pipeline(tmp_path, repo_snapshot):
    """dvc repro as an alternative local executor, on the tests config. CI reproduces one
    teacher's chain (corpus -> reference -> teacher -> generate -> filter); a student's stage
    needs every teacher's data (the common prompt ids), and DVC runs stages one at a time,
    so longer chains and the full pipeline are left to a manual run."""
    c = repo_snapshot(tmp_path / "C")
    sh(c, sys.executable, "workflow/scripts/export_dvc.py", "--configfile", TESTCFG)
    stage = "filter-animal-numbers-owl_t0"
    res = sh(c, "dvc", "repro", "-q", stage, check=False, timeout=1200)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert (c / "results/animal/numbers/filter/owl_t0.jsonl").stat().st_size > 0
    assert (c / "results/animal/teacher/owl_t0/model.safetensors").exists()
    assert not (c / "results/animal/teacher/dolphin_t0").exists()  # only the chain asked for
    assert (c / "dvc.lock").exists()
    status = sh(c, "dvc", "status", "-q", stage, check=False)
    assert status.returncode == 0, status.stdout
