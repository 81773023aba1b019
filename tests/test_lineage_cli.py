"""``sublim lineage`` on a path it cannot follow fails with one ``error:`` line, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

SUBLIM = Path(sys.executable).with_name("sublim")


@pytest.fixture
def repo(tmp_path):
    """A project root with a (trivial) dvc.lock, beside a file that lies outside it."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (tmp_path / "outside.txt").write_text("not an artifact\n")
    return root


def _lineage(root, *args):
    assert SUBLIM.exists(), SUBLIM
    return subprocess.run(
        [str(SUBLIM), "lineage", *args], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def _one_error_line(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["outside.txt", "missing/results.csv"])
def test_absolute_path_outside_the_repository(repo, name):
    target = repo.parent / name
    line = _one_error_line(_lineage(repo, str(target)))
    assert "outside the repository" in line and str(target) in line


def test_absolute_path_outside_a_given_root(repo, tmp_path):
    line = _one_error_line(_lineage(tmp_path, "--root", str(repo), str(tmp_path / "outside.txt")))
    assert "outside the repository" in line


def test_missing_relative_path_is_still_one_line(repo):
    line = _one_error_line(_lineage(repo, "results/nothing.csv"))
    assert "no such file" in line


def test_absolute_path_inside_the_repository_is_followed(repo):
    (repo / "results").mkdir()
    (repo / "results" / "x.csv").write_text("a\n")
    line = _one_error_line(_lineage(repo, str(repo / "results" / "x.csv")))
    assert "not an output of any recorded stage" in line and "results/x.csv" in line
