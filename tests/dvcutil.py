"""Helpers of the DVC tests (tests/test_dvc.py, and tests/test_workflow.py's DVC part):
git and DVC in scratch repositories, with the failing command's output on failure."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "GIT_AUTHOR_NAME": "sublim-test", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "sublim-test", "GIT_COMMITTER_EMAIL": "t@example.invalid",
}  # fmt: skip
TESTCFG = "tests/config.yaml"


def sh(cwd, *cmd, check=True, **kw):
    res = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, check=False, **kw)
    if check and res.returncode != 0:  # say why, not just that it failed
        tail = (res.stdout[-1500:] + "\n" + res.stderr[-3000:]).strip()
        pytest.fail(f"{' '.join(map(str, cmd))} exited {res.returncode} in {cwd}:\n{tail}", pytrace=False)
    return res


def tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for top in ("results", "reports"):
        for f in sorted((root / top).rglob("*")):
            if f.is_file() and ".gitignore" not in f.name and f.name != "README.md":
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
