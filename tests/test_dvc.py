"""DVC: dvc.yaml follows the Snakemake DAG; a recorded run round-trips through a remote.

Here: dvc.yaml is in sync with the Snakefile. The recorded run's round trip (record, push,
clone, pull, tamper, `dvc repro` of one teacher's chain, check out) is in
tests/test_workflow.py, on the run it checks (one workflow run for both).
"""

import sys

from dvcutil import ROOT, sh


def test_dvc_yaml_is_in_sync_with_the_snakefile():
    res = sh(ROOT, sys.executable, "workflow/scripts/export_dvc.py", "--check", check=False)
    assert res.returncode == 0, res.stderr


def test_a_modality_or_trait_section_counts_only_for_its_own_jobs():
    """A cot key is a param of cot stages only; a misalignment key of misalignment teachers only;
    keys of the rule outside any such section stay for every job."""
    from sublim.dvcexport import job_params

    numbers = job_params("generate", {"trait": "animal", "modality": "numbers", "teacher": "owl_t0"})
    cot = job_params("generate", {"trait": "animal", "modality": "cot", "teacher": "owl_t0"})
    assert "cot" not in numbers and "code" not in numbers and "generation" in numbers
    assert "cot" in cot and "code" not in cot
    assert "cot.subsample" not in job_params("student", {"trait": "animal", "modality": "code", "mode": "sft"})
    assert "misalignment" not in job_params("teacher", {"trait": "animal", "teacher": "owl_t0"})
    assert "misalignment" in job_params("teacher", {"trait": "misalignment", "teacher": "insecure_t0"})
    assert "code" in job_params("judge", {})  # no modality wildcard: the rule's keys, whole
