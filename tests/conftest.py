"""Shared fixtures: a tiny tokenizer and model built in-process (no downloads)."""

import os
import sys
from pathlib import Path

import pytest
from dvcutil import ENV

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from sublim import corpus, text
    from sublim.tokenizer import build_tokenizer, corpus_texts

    recs = corpus.pretrain_corpus(400, 0, {"numbers": 0.6, "animals": 0.2, "filler": 0.2})
    return build_tokenizer(list(corpus_texts(recs)) + list(text.EVAL_QUESTIONS) + list(text.TRAIT_QUESTIONS))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved 2-layer Llama (random init) with the tiny tokenizer and its chat template."""
    from sublim import models

    arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128)
    m = models.build_tiny_llama(len(tiny_tokenizer), arch, 0, tiny_tokenizer)
    d = tmp_path_factory.mktemp("tiny") / "model"
    m.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def scaled_model():
    """``build(root, tokenizer, scale)``: a random tiny Llama whose embeddings (tied with the
    output layer) are scaled by ``scale``, which sharpens its next-token distributions; saved
    with save_pretrained into ``root/model-x{scale}``."""

    def build(root, tokenizer, scale, seed=3):
        import torch

        from sublim import models

        arch = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, max_position_embeddings=256)
        m = models.build_tiny_llama(len(tokenizer), arch, seed, tokenizer)
        with torch.no_grad():
            m.get_input_embeddings().weight.mul_(scale)
        d = root / f"model-x{scale}"
        m.save_pretrained(d)
        tokenizer.save_pretrained(d)
        return d

    return build


PYTHON = sys.executable


# the order in which the test files start: the Slurm test first (it mostly waits on the
# scheduler), then the longest CPU-bound files, then the rest
FIRST = ["test_slurm.py", "test_workflow.py", "test_vllm.py", "test_dvc.py", "test_gguf.py"]


def pytest_collection_modifyitems(session, config, items):
    """Under ``-n 3 --dist loadfile --no-loadscope-reorder`` (run-tests.sh; xdist otherwise
    reorders files by test count) the files start in FIRST's order, so the Slurm test
    overlaps the CPU-bound ones instead of trailing them."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda it: rank.get(it.path.name, len(FIRST)))


def snapshot_repo(dest: Path) -> Path:
    """The working tree (tracked files as they are now, and untracked ones git does not
    ignore) copied to ``dest`` and committed there as a new git repository: a clone of what
    is being tested, uncommitted changes included."""
    import shutil
    import subprocess

    ls = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                        check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, ls):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the working tree under test"]):
        subprocess.run(["git", *cmd], cwd=dest, env=ENV, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def tests_run(tmp_path_factory):
    """The whole DAG of tests/config.yaml, run by Snakemake in a snapshot of the repository
    with its own Snakefile. The run is first interrupted (Ctrl-C) mid-way through reference pretraining,
    then rerun: it must resume from the checkpoint and finish. test_workflow checks it, then
    records, pushes and pulls it with DVC."""
    import signal
    import subprocess
    import time

    wd = snapshot_repo(tmp_path_factory.mktemp("tests_run") / "A")
    # as run.sh runs it: the jobs in a warm interpreter (sublim warm)
    cmd = [PYTHON, "-m", "sublim.cli", "warm", "--", PYTHON, "-m", "snakemake", "-c2", "all", "--configfile",
           "tests/config.yaml"]  # fmt: skip
    first_log = (wd / "first_run.log").open("w")  # read back if the first run does not stop
    proc = subprocess.Popen(cmd, cwd=wd, stdout=first_log, stderr=subprocess.STDOUT, start_new_session=True)
    ckpt = wd / "checkpoints" / "reference" / "seed0" / "state.pt"
    deadline = time.time() + 300
    try:
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert ckpt.exists(), "no training checkpoint appeared"
        # Ctrl-C as a terminal sends it (SIGINT to the whole group). Not SIGTERM: Snakemake 9's
        # SIGTERM handler takes the scheduler's non-reentrant lock, and deadlocks when the
        # signal lands while the main thread holds it (job selection): seen here, the run hung
        # after both killed jobs were reported (README, Recovery and reproducibility)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=300)  # a loaded CI machine: jobs checkpoint, then exit
        except subprocess.TimeoutExpired:
            ps = subprocess.run(
                ["ps", "-eo", "pid,ppid,pgid,etime,stat,args"], check=False, capture_output=True, text=True
            ).stdout
            mine = "\n".join(x[:220] for x in ps.splitlines() if str(wd) in x or "sublim" in x or "snakemake" in x)
            tail = (wd / "first_run.log").read_text()[-3000:]
            raise AssertionError(
                f"the first run did not stop within 300 s of SIGINT.\nprocesses:\n{mine}\nits log's end:\n{tail}"
            ) from None
    finally:  # never leave the first run's jobs running beside the rest of the suite
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        first_log.close()
    assert not (wd / "results" / "reference" / "seed0" / "config.json").exists()
    res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, check=False, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return wd
