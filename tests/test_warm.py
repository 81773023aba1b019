"""`sublim warm`: a step run in the warm server's forked child writes the same bytes as the
same step run in its own process, exits with the same status, and dies of the same signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sublim import warm

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
PY = sys.executable
pytestmark = pytest.mark.skipif(not warm.supported(), reason="needs fork and AF_UNIX descriptor passing")

CORPUS = {"max_count": 10, "mix": {"animals": 0.15, "filler": 0.15, "numbers": 0.7}, "n": 1000, "seed": 7}
REFERENCE = {
    "arch": {"hidden_size": 32, "intermediate_size": 64, "max_position_embeddings": 256, "num_heads": 2,
             "num_layers": 2},
    "kind": "tiny",
    "pretrain": {"batch_size": 16, "checkpoint_every": 5, "epochs": 1, "lr": 0.003, "warmup_steps": 2,
                 "weight_decay": 0.0},
    "seed": 0,
    "system_prompt": None,
}  # fmt: skip


def start_server(path: str) -> subprocess.Popen:
    """A warm server on ``path`` as ``sublim warm`` starts it, once it says it is ready."""
    r, w = os.pipe()
    proc = subprocess.Popen([PY, "-m", "sublim.warm", "serve", path, str(w)], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r) as f:
        assert f.readline().strip() == "ready"
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A warm server as ``sublim warm`` starts it; its socket path."""
    path = str(tmp_path_factory.mktemp("warm") / "sock")
    proc = start_server(path)
    yield path
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    assert not os.path.exists(path), "the server left its socket behind"


def steps(wd: Path, env: dict) -> None:
    """The corpus and a few steps of tiny-model pretraining, as the workflow runs them."""
    wd.mkdir()
    env = {**env, "OMP_NUM_THREADS": "1"}
    for args in (
        ["corpus.py", "--out-corpus", "corpus.jsonl", "--out-tokenizer", "tok", "--params", json.dumps(CORPUS)],
        ["reference.py", "--corpus", "corpus.jsonl", "--tokenizer", "tok", "--out", "ref", "--threads", "1",
         "--params", json.dumps(REFERENCE)],
    ):  # fmt: skip
        subprocess.run([PY, SCRIPTS / args[0], *args[1:]], cwd=wd, env=env, check=True, capture_output=True)


def test_a_step_in_the_warm_server_writes_the_same_bytes(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != warm.ENV}
    steps(tmp_path / "cold", env)
    steps(tmp_path / "warm", {**env, warm.ENV: server})
    for name in ("corpus.jsonl", "ref/model.safetensors", "ref/config.json", "tok/tokenizer.json"):
        assert (tmp_path / "cold" / name).read_bytes() == (tmp_path / "warm" / name).read_bytes(), name


PROBE = """
import os, sys, time
from sublim import script
def run():
    print("pid", os.getpid(), "cwd", os.getcwd(), "argv", sys.argv[1:], "env", os.environ.get("PROBE"), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    if sys.argv[1] == "sleep":
        open("started", "w").close()
        time.sleep(60)
    sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else 0)
script.main(run)
"""


def test_the_child_is_the_script_its_streams_status_and_directory(server, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, warm.ENV: server, "PROBE": "x"}
    res = subprocess.run([PY, "probe.py", "5"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 5
    assert f"cwd {tmp_path} argv ['5'] env x" in res.stdout
    assert res.stderr == "to stderr\n"
    child_pid = int(res.stdout.split()[1])
    assert child_pid != os.getpid()


@pytest.mark.parametrize("code, want", [("sys.exit(-1)", 255), ("os.kill(os.getpid(), 9)", -9)])
def test_exit_codes_and_deaths_are_mirrored(server, tmp_path, code, want):
    (tmp_path / "die.py").write_text(f"import os, sys\nfrom sublim import script\nscript.main(lambda: {code})\n")
    env = {**os.environ, warm.ENV: server}
    res = subprocess.run([PY, "die.py"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    cold = subprocess.run([PY, "die.py"], cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={k: v for k, v in env.items() if k != warm.ENV})  # fmt: skip
    assert res.returncode == cold.returncode == want, res.stderr


def test_a_stalled_client_holds_the_server_up_only_until_its_timeout(server, tmp_path):
    import socket

    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.connect(server)
    stalled.sendall(b"\x00\x00")  # half a header, then nothing
    try:
        (tmp_path / "probe.py").write_text(PROBE)
        env = {**os.environ, warm.ENV: server, "PROBE": "y"}
        res = subprocess.run([PY, "probe.py", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             check=False, timeout=60)  # fmt: skip
        assert res.returncode == 0 and "env y" in res.stdout
    finally:
        stalled.close()


def test_without_a_server_the_script_runs_in_its_own_process(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, warm.ENV: str(tmp_path / "no-such-socket")}
    res = subprocess.run([PY, "probe.py", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "env None" in res.stdout


def test_a_job_started_as_the_run_stops_does_not_run(tmp_path):
    """Once the server has been told to stop (the run is being stopped), a job that its command
    started meanwhile does not run in its own process for its whole length: it dies as the
    stop would have killed it (SIGTERM), so the stopping run does not wait on it."""
    (tmp_path / "probe.py").write_text(PROBE)
    path = str(tmp_path / "sock")
    proc = start_server(path)
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    env = {**os.environ, warm.ENV: path}
    res = subprocess.run([PY, "probe.py", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == -signal.SIGTERM and "pid" not in res.stdout
    assert "the run is stopping; probe.py not started" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_the_script_reaches_the_child(server, tmp_path, sig):
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, warm.ENV: server}
    proc = subprocess.Popen([PY, "probe.py", "sleep"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    child = int(proc.stdout.readline().split()[1])
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == -sig  # the script's process dies of the same signal
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie until the server reaps it: alive for kill(0), gone from /proc's state
        try:
            if Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z":
                break
        except FileNotFoundError:  # reaped meanwhile
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the child {child} outlived its script's process")


JOB = """
import pathlib, signal, sys, time
i = sys.argv[1]
def got(name, code):
    def handler(*_):
        pathlib.Path(f"got-{i}").write_text(name)
        sys.exit(code)
    return handler
signal.signal(signal.SIGINT, got("SIGINT", 3))
signal.signal(signal.SIGTERM, got("SIGTERM", 4))
pathlib.Path(f"started-{i}").touch()
time.sleep(120)
"""


def _wait_for(paths, proc, seconds=120):
    deadline = time.time() + seconds
    while not all(p.exists() for p in paths) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert all(p.exists() for p in paths), [p.name for p in paths if not p.exists()]


def test_sigterm_stops_a_snakemake_run_as_ctrl_c_does(tmp_path):
    """``kill`` (SIGTERM) to ``sublim warm`` reaches a Snakemake run as SIGINT, to Snakemake and
    to each running job, as a terminal's Ctrl-C does (never Snakemake's SIGTERM handler, which
    can deadlock); the run stops at once. Any other command gets the SIGTERM itself."""
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "Snakefile").write_text(
        f'rule all:\n    input: ["out1", "out2"]\n\n'
        f'rule job:\n    output: "out{{i}}"\n    shell: "{PY} job.py {{wildcards.i}} && touch {{output}}"\n'
    )
    cmd = [PY, "-m", "sublim.cli", "warm", "--", PY, "-m", "snakemake", "-c2", "--snakefile", "Snakefile"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for([tmp_path / "started-1", tmp_path / "started-2"], proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode != 0
        assert (tmp_path / "got-1").read_text() == (tmp_path / "got-2").read_text() == "SIGINT"
        assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
        assert "Will exit after finishing currently running jobs" not in err  # not the SIGTERM path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    other = subprocess.Popen([PY, "-m", "sublim.cli", "warm", "--", PY, "job.py", "9"], cwd=tmp_path,
                             start_new_session=True)  # fmt: skip
    try:
        _wait_for([tmp_path / "started-9"], other)
        other.send_signal(signal.SIGTERM)
        assert other.wait(timeout=60) == 4
        assert (tmp_path / "got-9").read_text() == "SIGTERM"
    finally:
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGKILL)
            other.wait()


def test_snakemake_commands_are_recognised():
    assert warm.is_snakemake(["snakemake", "-c2", "all"]) and warm.is_snakemake([".venv/bin/snakemake"])
    assert warm.is_snakemake(["/usr/bin/python3.11", "-m", "snakemake", "-n"])
    assert not warm.is_snakemake(["python", "job.py"]) and not warm.is_snakemake(["make", "snakemake"])
    assert not warm.is_snakemake([])
