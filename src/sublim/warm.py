"""A warm interpreter for the workflow's jobs: a fork server that has imported torch and
transformers once, so a job starts in a fraction of a second instead of paying 7 s of
imports (``benchmarks/startup.py``). The embedded default runs about 120 jobs on 2 cores.

    sublim warm -- snakemake -c2 all      # what run.sh does

``sublim warm`` starts the server, runs the command with ``SUBLIM_WARM`` naming the server's
socket, and stops the server when the command ends. A step script (``workflow/scripts/*.py``,
through ``sublim.script.main``) that sees ``SUBLIM_WARM`` sends its command line, working
directory, environment and standard streams to the server instead of importing anything;
the server forks a child that runs the script exactly as ``python SCRIPT ARGS`` would (as
``__main__``, in that directory, with that environment, writing to those streams), and the
script's process waits for the child and exits with its status. The step is the same code
on the same inputs: its outputs are the same bytes (``tests/test_warm.py``).

What the child shares with the server is only the import of third-party packages made before
any job arrived: no ``sublim`` module (the child imports the working tree's), no thread pool
(the server never runs an operator; the child sets torch's threads from ``OMP_NUM_THREADS``
as torch does at import), no random state that a step relies on (every step seeds its own).

Signals: the script's process forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child, so
a training step checkpoints as it would when killed directly; if that process is killed
outright (SIGKILL), the server sees its connection close and kills the child the same way
(the child runs no thread of sublim's: the step's process is the script's alone). Snakemake
sees one process that exits with the step's status, or dies of the step's signal. Once the
server has been told to stop (SIGTERM: the run is being stopped), it marks its socket
(``SOCKET.stopping``), and a job that the command started meanwhile, which the stop did not
reach, dies of SIGTERM at once instead of running its whole length in its own process while
the stopping run waits for it.

Not used (the script runs in its own process as before) when ``SUBLIM_WARM`` is unset, inside
a Slurm job (``SLURM_JOB_ID``: the job's cgroup and resources are the scheduler's), on a
system without ``fork`` and ``AF_UNIX`` descriptor passing, or when the server cannot be
reached.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

ENV = "SUBLIM_WARM"
STOPPING = ".stopping"  # beside the socket, once the server has been told to stop
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
MAX_MESSAGE = 64 << 20  # a request: command line and environment
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# what the server imports before it accepts a job: what nearly every step imports
PRELOAD = (
    "import numpy, torch, safetensors.torch, tqdm",
    "from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM, GPTNeoXForCausalLM, "
    "PreTrainedTokenizerFast",
)


def _forwarded() -> set:
    return {getattr(signal, name) for name in FORWARDED}


def supported() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds")


def _send(sock: socket.socket, obj, fds=()) -> None:
    data = json.dumps(obj).encode()
    head = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(sock, [head], list(fds))
        sock.sendall(data)
    else:
        sock.sendall(head + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv(sock: socket.socket, with_fds: int = 0):
    """One message (and up to ``with_fds`` descriptors sent with its header); None at EOF."""
    fds = []
    if with_fds:
        head, fds, _flags, _addr = socket.recv_fds(sock, 4, with_fds)
        if len(head) < 4:
            rest = _recv_exact(sock, 4 - len(head))
            head = head + rest if rest is not None else b""
    else:
        head = _recv_exact(sock, 4)
    if not head or len(head) < 4:
        for fd in fds:
            os.close(fd)
        return None if not with_fds else (None, [])
    try:
        size = struct.unpack("!I", head)[0]
        if size > MAX_MESSAGE:
            raise ValueError(f"message of {size} bytes")
        data = _recv_exact(sock, size)
        obj = json.loads(data) if data is not None else None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return (obj, fds) if with_fds else obj


# ---------------------------------------------------------------- the script's side (client)


def _stopping(path: str, script: str) -> int | None:
    """Where the server could not run a job: if it was told to stop (the run is being stopped,
    and this job was started as it happened), the job does not start, as if the stop had
    reached it (death by SIGTERM); otherwise None, and it runs in its own process."""
    if os.path.exists(path + STOPPING):
        print(f"sublim warm: the run is stopping; {os.path.basename(script)} not started", file=sys.stderr)
        return -signal.SIGTERM
    return None


def delegate(argv: list[str] | None = None) -> int | None:
    """Run this script in the warm server; return its exit status (negative: the signal
    that killed it), or None to run it here (no server, or not applicable)."""
    path = os.environ.get(ENV)
    if not path or os.environ.get("SLURM_JOB_ID") or not supported():
        return None
    argv = list(sys.argv if argv is None else argv)
    script = os.path.abspath(argv[0])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        env = {k: v for k, v in os.environ.items() if k != ENV}
        req = {"argv": [script, *argv[1:]], "cwd": os.getcwd(), "env": env}
        _send(sock, req, fds=(0, 1, 2))
        reply = _recv(sock)
    except OSError:
        sock.close()
        return _stopping(path, script)
    if not reply or "pid" not in reply:  # the server did not take it: run here, unless stopping
        sock.close()
        return _stopping(path, script)
    pid = reply["pid"]

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in FORWARDED:
        signal.signal(getattr(signal, name), forward)
    try:
        done = _recv(sock)
    except OSError:
        done = None
    sock.close()
    for name in FORWARDED:  # the child is gone: its pid may be reused
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    if not done:
        try:  # the server died: its child must not run on unwatched
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        print(f"error: the warm server ({path}) went away while it ran {script}", file=sys.stderr)
        return 1
    return done["status"]


def exit_like(status: int) -> None:
    """Leave this process with ``status``: an exit code, or (negative) death by that signal."""
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:
        signum = -status
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP take no handler
            pass
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # not reached for a fatal signal
    os._exit(status & 0xFF)


# ------------------------------------------------------------------------ the server


def _child(conn: socket.socket, req: dict, fds: list[int]) -> None:
    """In the forked child: become ``python SCRIPT ARGS`` and never return."""
    import runpy

    status = 1
    try:
        conn.close()  # the server watches the script's process; the child holds no socket
        os.setsid()  # the terminal's signals reach it through the script's process only
        for name in FORWARDED:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _forwarded())  # blocked across the fork
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        script = req["argv"][0]
        sys.argv = list(req["argv"])
        sys.path[0] = os.path.dirname(script)
        for name in [m for m in sys.modules if m == "sublim" or m.startswith("sublim.")]:
            del sys.modules[name]
        import torch

        # what torch does at import: OMP_NUM_THREADS, else one thread per usable CPU
        n = os.environ.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(int(n) if n.isdigit() and int(n) > 0 else len(os.sched_getaffinity(0)))

        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as e:
            code = e.code
            if code is None:
                status = 0
            elif isinstance(code, int):
                status = code & 0xFF  # as the interpreter reports it
            else:
                print(code, file=sys.stderr)
                status = 1
        except KeyboardInterrupt:
            status = -signal.SIGINT
        except BaseException:
            import traceback

            traceback.print_exc()
            status = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # as the interpreter's own exit would (os._exit skips them)
        finally:
            exit_like(status)


def serve(path: str, *, ready_fd: int | None = None) -> None:
    """Import PRELOAD, listen on ``path``, fork a child per request until SIGTERM, then
    let the children already running finish, report them, and exit."""
    import selectors

    stopping = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is for the jobs
    marker = path + STOPPING
    if os.path.exists(marker):  # a path reused after a server that was killed outright
        os.unlink(marker)

    def stop(*_):
        stopping.append(True)
        open(marker, "w").close()  # at once: a job asking from now on is not started (delegate)

    signal.signal(signal.SIGTERM, stop)
    # listen first, then import: a job that arrives meanwhile waits in the queue for the
    # imports it would otherwise make itself, and the command starts at once
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(64)
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    # the thread libraries (OpenMP, MKL) read these once, when torch loads them: load them
    # as a one-thread job (the default's) does; each child then sets its own job's count.
    # (benchmarks/warm_ab.py --with-unset compares a server loaded without them: no
    # difference beyond this machine's noise in session 10)
    if os.environ.get("SUBLIM_WARM_THREAD_VARS") != "keep":  # "keep": for that benchmark only
        for var in THREAD_VARS:
            os.environ[var] = "1"
    hidden = "sklearn" not in sys.modules  # as sublim.script.main hides it from transformers
    if hidden:
        sys.modules["sklearn"] = None
    for line in PRELOAD:
        exec(line, {})
    if hidden:
        del sys.modules["sklearn"]
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    listening = True
    children: dict[int, socket.socket] = {}
    while listening or children:
        if stopping and listening:  # the marker is already there (stop)
            sel.unregister(lsock)
            lsock.close()
            os.unlink(path)
            listening = False
        for key, _ in sel.select(timeout=0.05):
            if key.fileobj is not lsock:  # a running job's script process: EOF means it is gone
                pid = key.data
                try:
                    gone = not key.fileobj.recv(1)
                except OSError:
                    gone = True
                if gone:  # killed outright (SIGKILL): its child goes the same way
                    sel.unregister(key.fileobj)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            try:
                conn, _addr = lsock.accept()
            except OSError:
                continue
            conn.settimeout(10)  # a client that stalls mid-request must not stall the others
            try:
                req, fds = _recv(conn, with_fds=3)
            except (OSError, ValueError, MemoryError):
                req, fds = None, []
            conn.settimeout(None)
            if req is None or len(fds) != 3 or stopping:  # stopping: told while it was being accepted
                for fd in fds:
                    os.close(fd)
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            signal.pthread_sigmask(signal.SIG_BLOCK, _forwarded())  # none lost before the child's handlers
            try:
                pid = os.fork()
            except OSError:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _forwarded())
                for fd in fds:
                    os.close(fd)
                conn.close()  # the script runs in its own process instead
                continue
            if pid == 0:
                sel.close()
                lsock.close()
                for other in children.values():
                    other.close()
                _child(conn, req, fds)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _forwarded())  # a stop held back runs stop() here
            if stopping:  # told to stop during the fork: this job's script may have missed the signal
                os.kill(pid, signal.SIGTERM)
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            try:
                _send(conn, {"pid": pid})
            except OSError:
                pass
            sel.register(conn, selectors.EVENT_READ, pid)
        while children:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is None:
                continue
            try:
                sel.unregister(conn)
            except KeyError:  # unregistered when its script's process went away
                pass
            status = -os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else os.WEXITSTATUS(wstatus)
            try:
                _send(conn, {"status": status})
            except OSError:
                pass
            conn.close()


def is_snakemake(cmd: list[str]) -> bool:
    """``cmd`` runs Snakemake: its program is ``snakemake``, or ``python -m snakemake``."""
    name = os.path.basename(cmd[0]) if cmd else ""
    return name.startswith("snakemake") or (name.startswith("python") and cmd[1:3] == ["-m", "snakemake"])


def _descendants(pid: int) -> list[int]:
    """``pid``'s descendants, parents before children (from ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # the name may hold spaces
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def interrupt_tree(pid: int, settle: float = 0.5) -> None:
    """SIGINT to ``pid`` and its descendants: what a terminal's Ctrl-C sends a Snakemake run
    (to its process group), without reaching anything outside the run. A group's signal
    reaches every member at once; a walk of ``/proc`` can miss a process forked while it
    reads, so a second walk ``settle`` seconds later signals what the first missed (each
    process once: a second SIGINT would interrupt Snakemake's own clean-up)."""
    sent: set[int] = set()
    for sweep in range(2):
        if sweep:
            time.sleep(settle)
        for p in [pid, *_descendants(pid)]:
            if p in sent:
                continue
            sent.add(p)
            try:
                os.kill(p, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass


def run(cmd: list[str]) -> int:
    """Start a server, run ``cmd`` with ``SUBLIM_WARM`` set, stop the server; return the
    command's exit status (a signal's as 128 + its number, as a shell reports it).

    SIGTERM and SIGHUP to this process stop the command. A Snakemake command is stopped as
    Ctrl-C stops it, SIGINT to Snakemake and to every job it runs (they checkpoint and exit),
    never with SIGTERM: Snakemake 9's SIGTERM handler takes its scheduler's non-reentrant lock
    and deadlocks when the signal lands while the main thread holds it (README, Recovery and
    reproducibility). Any other command is sent the signal itself. SIGINT is ignored here: a
    terminal's Ctrl-C reaches the command's whole process group already."""
    import subprocess
    import tempfile

    if not cmd:
        raise SystemExit("sublim warm: no command given (e.g. sublim warm -- snakemake -c2 all)")
    env = dict(os.environ)
    server = None
    tmp = None
    if supported() and not os.environ.get("SLURM_JOB_ID"):
        tmp = tempfile.mkdtemp(prefix="sublim-warm-")
        path = os.path.join(tmp, "sock")
        r, w = os.pipe()
        server = subprocess.Popen([sys.executable, "-m", "sublim.warm", "serve", path, str(w)], pass_fds=(w,), env=env)
        os.close(w)
        with os.fdopen(r) as f:
            ok = f.readline().strip() == "ready"
        if ok:
            env[ENV] = path
        else:
            print("sublim warm: the server did not start; running without it", file=sys.stderr)
    try:
        proc = subprocess.Popen(cmd, env=env)
    except OSError as e:
        if server is not None:
            server.terminate()
            server.wait()
        raise SystemExit(f"sublim warm: cannot run {cmd[0]}: {e.strerror}") from None

    snakemake = is_snakemake(cmd)
    relayed = False

    def forward(signum, _frame):
        nonlocal relayed
        if proc.returncode is not None:  # reaped: its pid may be another process's by now
            return
        if snakemake:  # a stop, as Ctrl-C gives it: SIGINT to snakemake and every job it runs
            if relayed:  # once: a second SIGINT would interrupt Snakemake's own clean-up
                return
            relayed = True
            interrupt_tree(proc.pid)
            return
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to both
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if server is not None:
            if server.poll() is None:
                server.terminate()
            server.wait()
        if tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2], ready_fd=int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        raise SystemExit("usage: python -m sublim.warm serve SOCKET [READY_FD]  (or: sublim warm -- CMD ...)")
