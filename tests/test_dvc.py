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
