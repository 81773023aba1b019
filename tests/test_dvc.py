"""DVC: dvc.yaml follows the Snakemake DAG; a recorded run round-trips through a remote.

Real git and real DVC: record the tests workflow's run (conftest.tests_run, made in a
snapshot of the repository and checked by test_workflow; dvc commit, no rerun), push; clone
it and pull; every artifact must be byte-identical and Snakemake must have nothing to do.
Then tamper with a checkpoint and check both `dvc status` and `sublim lineage` flag it.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
# the recorded run: the whole tests design, run once for test_workflow and test_dvc together
RUNCFG = TESTCFG


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


def test_dvc_yaml_is_in_sync_with_the_snakefile():
    res = sh(ROOT, sys.executable, "workflow/scripts/export_dvc.py", "--check", check=False)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def clones(tests_run):
    a = tests_run
    base = a.parent
    b = base / "B"
    sh(a, "sublim", "record", "--configfile", RUNCFG)
    # an interrupted push leaves the remote usable and resumes: kill the push once the
    # first objects have reached the remote (a fixed delay can land before DVC has started)
    remote = base / "sublim-dvc-remote"
    p = subprocess.Popen(["dvc", "push", "-q"], cwd=a, env=ENV)
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline and not any(f.is_file() for f in remote.rglob("*")):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    sh(a, "sublim", "push")  # verified: plain `dvc push` after a killed one can skip objects
    sh(a, "git", "add", "-A")
    sh(a, "git", "commit", "-qm", "record tests run")
    sh(base, "git", "clone", "-q", str(a), str(b))
    sh(b, "sublim", "pull", "--configfile", RUNCFG)
    return a, b


def test_pulled_artifacts_are_byte_identical(clones):
    a, b = clones
    ha, hb = tree_hashes(a), tree_hashes(b)
    assert len(ha) > 50
    tracked = {k: v for k, v in ha.items() if not k.startswith("logs/")}
    assert {k: hb.get(k) for k in tracked} == tracked


def test_pulled_clone_has_nothing_to_do(clones):
    _, b = clones
    res = sh(b, sys.executable, "-m", "snakemake", "-n", "all", "--configfile", RUNCFG)
    assert "Nothing to be done" in res.stdout + res.stderr


def test_lineage_of_the_figure_reaches_the_reference(clones):
    _, b = clones
    t0 = time.time()
    res = sh(b, "sublim", "lineage", "reports/animal_numbers/plain/fig_transfer.png", "--json")
    assert time.time() - t0 < 5
    nodes = json.loads(res.stdout)
    steps = [n.get("step") for n in nodes]
    for step in ("figure", "aggregate", "evaluate", "student", "filter", "generate", "teacher", "reference", "corpus"):
        assert step in steps, step
    assert all(n["matches_record"] is True for n in nodes if n.get("stage"))
    assert all(n.get("git_commit") for n in nodes if n.get("stage"))


def test_tampered_checkpoint_is_flagged(clones):
    _, b = clones
    ckpt = b / "results/animal/numbers/student/owl_t0/sft/seed0/seed0/model.safetensors"
    # dvc may have linked the file from its cache: replace it, never write through the link
    data = ckpt.read_bytes()
    ckpt.unlink()
    ckpt.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    status = sh(b, "dvc", "status", "-q", check=False)
    assert status.returncode != 0 or "modified" in status.stdout
    res = sh(b, "sublim", "lineage", "results/animal/numbers/student/owl_t0/sft/seed0/seed0", check=False)
    assert res.returncode == 3 and "MODIFIED" in res.stdout
    res = sh(b, "sublim", "lineage", "results/no/such/file", check=False)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0


def test_push_repairs_a_half_written_directory_object(clones):
    """A push killed mid-way can leave a directory object empty in the remote (seen in CI);
    DVC only checks existence, so later pushes skip it and every pull of it fails. `sublim
    push` finds it by its hash, removes it and pushes it again."""
    a, _ = clones
    remote = a.parent / "sublim-dvc-remote"
    victim = sorted(remote.rglob("*.dir"))[0]
    good = victim.read_bytes()
    json.loads(good)
    victim.unlink()  # the remote may hold a hard link to A's cache: never write through it
    victim.write_bytes(b"")
    res = sh(a, "sublim", "push")
    assert "was corrupted" in res.stderr and "pushed:" in res.stderr
    assert victim.read_bytes() == good


def test_checkout_of_an_older_commit_restores_its_artifacts(clones):
    a, _ = clones
    caption = "reports/animal_numbers/plain/caption.md"
    before = tree_hashes(a)[caption]
    old = sh(a, "git", "rev-parse", "HEAD").stdout.strip()
    cfg = a / RUNCFG
    assert "name: tests\n" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("name: tests", "name: tests-renamed"))
    sh(a, sys.executable, "-m", "snakemake", "-c2", "all", "--configfile", RUNCFG, timeout=600)
    sh(a, "sublim", "record", "--configfile", RUNCFG)
    sh(a, "git", "add", "-A")
    sh(a, "git", "commit", "-qm", "renamed config")
    assert tree_hashes(a)[caption] != before
    sh(a, "git", "checkout", "-q", old)
    sh(a, "dvc", "checkout", "-q")
    assert tree_hashes(a)[caption] == before
    shutil.rmtree(a / ".snakemake", ignore_errors=True)


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
