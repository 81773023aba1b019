"""Provenance manifests and crash-safe output writing.

Every artifact (a model directory or a data file) gets a JSON manifest with the step, its
resolved parameters, the seed, the hashes of its inputs, package versions, the git commit,
the Slurm job id when there is one, and the wall time. Outputs are written to a temporary
sibling and renamed into place, so a killed job never leaves a half-written artifact that
looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

MANIFEST = "manifest.json"
_PACKAGES = ("torch", "transformers", "tokenizers", "peft", "numpy", "pandas", "snakemake", "vllm")


# Files at least this large (model weights) have their hashes remembered in a cache keyed on
# the file's path and its stat (size, mtime, ctime, inode), as DVC and git remember theirs:
# a local 7B model (15 GB) listed as an input of every student's manifest is read once, not
# once per job. Smaller files (every file of the embedded default) are hashed afresh.
CACHE_MIN_BYTES = 64 << 20
CACHE_ENV = "SUBLIM_HASH_CACHE"  # a directory, or "off"; default ~/.cache/sublim/sha256
_RACY_SECONDS = 2.0  # a file changed this recently may still be being written: not remembered


def hash_cache_dir() -> Path | None:
    """Where big files' hashes are remembered (``$SUBLIM_HASH_CACHE``, else the user's cache
    directory), or None when ``$SUBLIM_HASH_CACHE`` is ``off``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "none", "false"):
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sublim" / "sha256"


def _stat_key(st: os.stat_result) -> dict:
    # ctime cannot be set by hand (touch, cp -p, rsync -t set mtime only): content rewritten
    # with its old mtime restored still changes it
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def _hash_bytes(path, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's SHA-256. Files of ``CACHE_MIN_BYTES`` or more are looked up in the hash
    cache first (by path and stat) and remembered there after hashing; an unreadable or
    stale entry is ignored, and a cache that cannot be written only costs the saving."""
    st = os.stat(path)
    cache = hash_cache_dir() if st.st_size >= CACHE_MIN_BYTES else None
    if cache is None:
        return _hash_bytes(path, chunk)
    real = os.path.realpath(path)
    entry = cache / (hashlib.sha256(real.encode()).hexdigest() + ".json")
    key = {"path": real, **_stat_key(st)}
    try:
        got = json.loads(entry.read_text())
        if isinstance(got, dict) and {k: got.get(k) for k in key} == key and isinstance(got.get("sha256"), str):
            return got["sha256"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    digest = _hash_bytes(path, chunk)
    after = os.stat(path)
    # "changed" is the later of mtime and ctime: content rewritten with its old mtime put back
    if _stat_key(after) == _stat_key(st) and time.time() - max(st.st_mtime, st.st_ctime) > _RACY_SECONDS:
        tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({**key, "sha256": digest}))
            os.replace(tmp, entry)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return digest


def _pointer(p: Path) -> dict | None:
    """The manifest of a pointer directory (no weights of its own, a ``model_path`` to follow,
    as ``models.resolve`` reads it), else None."""
    if (p / "config.json").exists() or not (p / MANIFEST).is_file():
        return None
    try:
        m = json.loads((p / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) and m.get("model_path") else None


def sha256_path(path: str | os.PathLike) -> str:
    """Hash of a file, or of a directory's files (names and contents, manifest excluded).

    A pointer directory (a system-prompt or control teacher, an adapter-only LoRA student:
    a manifest whose ``model_path`` names the weights) also hashes what it points at: the
    target's own hash, and its manifest's ``system_prompt`` and ``adapter``. Otherwise two
    teachers of the same reference would hash alike (their directories hold nothing else).
    """
    return _sha256_path(Path(path), frozenset())


def _sha256_path(p: Path, seen: frozenset[Path]) -> str:
    if p.is_file():
        return sha256_file(p)
    if not p.is_dir():
        raise FileNotFoundError(f"cannot hash missing input: {p}")
    h = hashlib.sha256()
    if (m := _pointer(p)) is not None:
        here = p.resolve()
        if here in seen:
            raise ValueError(f"model_path pointers form a cycle at {p}")
        target = p / m["model_path"]  # a relative path is relative to this directory
        if not target.exists():
            raise FileNotFoundError(f"cannot hash {p}: its model_path target is missing: {target}")
        meaning = {
            "target_sha256": _sha256_path(target, seen | {here}),
            # absent means "inherited from the target", which the target's hash covers
            "system_prompt": m.get("system_prompt", {"inherited": True}),
            "adapter": m.get("adapter"),
        }
        # a NUL never occurs in the file names hashed below, so this prefix cannot
        # collide with the hash of a plain directory
        h.update(b"\0pointer\0" + json.dumps(meaning, sort_keys=True).encode() + b"\0")
    for f in sorted(x for x in p.rglob("*") if x.is_file() and x.name != MANIFEST):
        h.update(str(f.relative_to(p)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_commit() -> str | None:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# The code version of the running step (``script.check_code``: its version and the fingerprints
# of its files, ``sublim.codeversion``), recorded in every manifest the step writes; None when
# a step runs outside the workflow's command lines.
STEP_CODE: dict | None = None


def build_manifest(step: str, params: dict, inputs: dict, seed: int | None, started: float, **extra):
    return {
        "step": step,
        "params": params,
        "seed": seed,
        "inputs": {k: {"path": str(v), "sha256": sha256_path(v)} for k, v in inputs.items()},
        "versions": package_versions(),
        "git_commit": git_commit(),
        **({"code": STEP_CODE} if STEP_CODE is not None else {}),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "host": platform.node(),
        "argv": sys.argv,
        "wall_seconds": round(time.time() - started, 3),
        **extra,
    }


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.replace(tmp, path)


def manifest_path(artifact: str | os.PathLike) -> Path:
    """A directory's manifest lives inside it; a file's sits beside it as ``<name>.manifest.json``."""
    p = Path(artifact)
    return p / MANIFEST if p.is_dir() else p.with_name(p.name + ".manifest.json")


def read_manifest(artifact: str | os.PathLike) -> dict:
    mp = manifest_path(artifact)
    if not mp.exists():
        raise FileNotFoundError(f"no manifest for {artifact} (expected {mp})")
    return json.loads(mp.read_text())


def save_figure(fig, path, dpi: int = 110) -> None:
    """A matplotlib figure written atomically as PNG, then closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
