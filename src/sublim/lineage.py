"""Walk an artifact's lineage back to its roots, from ``dvc.lock`` and the artifact manifests.

For each node: its path and recorded content hash, the stage (Snakemake job) that made it,
that job's parameters and seed, the git commit it ran at, and whether the file on disk still
matches what DVC recorded. Directory outputs are checked file by file against the ``.dir``
listing in the DVC cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from .errors import SublimError
from .manifest import manifest_path

CODE_PREFIXES = ("src/", "workflow/")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _cache_file(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def on_disk_matches(root: Path, rel: str, md5: str | None) -> bool | None:
    """True/False when it can tell; None when nothing was recorded."""
    if not md5:
        return None
    p = root / rel
    if not p.exists():
        return False
    if md5.endswith(".dir"):
        listing = _cache_file(root, md5)
        if not p.is_dir() or not listing.exists():
            return None if p.is_dir() else False
        entries = json.loads(listing.read_text())
        want = {e["relpath"]: e["md5"] for e in entries}
        have = {str(f.relative_to(p)) for f in p.rglob("*") if f.is_file()}
        if have != set(want):
            return False
        return all(_md5(p / r) == m for r, m in want.items())
    return p.is_file() and _md5(p) == md5


class Lock:
    def __init__(self, root: Path):
        self.root = root
        lock = root / "dvc.lock"
        if not lock.exists():
            raise SublimError("no dvc.lock here: record a run first (sublim record)")
        self.stages = yaml.safe_load(lock.read_text()).get("stages", {})
        self.producer: dict[str, tuple[str, dict]] = {}
        for name, st in self.stages.items():
            for out in st.get("outs", []):
                self.producer[out["path"]] = (name, out)

    def find(self, path: str) -> tuple[str, str, dict]:
        """(output path, stage name, out entry) for a path equal to or inside an output."""
        p = Path(path)
        for cand in [p, *p.parents]:
            key = str(cand)
            if key in self.producer:
                name, out = self.producer[key]
                return key, name, out
        raise SublimError(f"not an output of any recorded stage in dvc.lock: {path}")


def _manifest_for(root: Path, out: str) -> dict:
    try:
        return json.loads(manifest_path(root / out).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _relative(path: str, root: Path) -> str:
    """``path`` relative to the (resolved) root; an absolute path must lie inside it."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.resolve().relative_to(root))
    except ValueError:
        raise SublimError(f"{path} is outside the repository {root} (lineage covers its outputs only)") from None


def lineage(path: str, root: Path = Path(".")) -> list[dict]:
    """Nodes from ``path`` back to the roots, depth first, each listed once."""
    root = root.resolve()
    rel = _relative(path, root)
    lock = Lock(root)
    if not (root / rel).exists():
        raise SublimError(f"no such file: {rel}")
    nodes, seen = [], set()

    def visit(p: str, depth: int):
        out, stage, entry = lock.find(p)
        if out in seen:
            return
        seen.add(out)
        st = lock.stages[stage]
        # a stage's side outputs (stats.csv beside results.csv) share its main output's manifest
        m = _manifest_for(root, out) or next(
            (mm for o in st.get("outs", []) if (mm := _manifest_for(root, o["path"]))), {}
        )
        md5 = entry.get("md5")
        node = {
            "depth": depth,
            "path": out,
            "hash": md5,
            "matches_record": on_disk_matches(root, out, md5),
            "stage": stage,
            "step": m.get("step"),
            "params": m.get("params", st.get("params")),
            "seed": m.get("seed"),
            "git_commit": m.get("git_commit"),
            "slurm_job_id": m.get("slurm_job_id"),
            "code": {d["path"]: d.get("md5") for d in st.get("deps", []) if d["path"].startswith(CODE_PREFIXES)},
            "inputs": [d["path"] for d in st.get("deps", []) if not d["path"].startswith(CODE_PREFIXES)],
        }
        nodes.append(node)
        for dep in node["inputs"]:
            try:
                visit(dep, depth + 1)
            except SublimError:
                nodes.append({"depth": depth + 1, "path": dep, "hash": None, "matches_record": None,
                              "stage": None, "note": "external input (no producing stage)"})  # fmt: skip

    visit(rel, 0)
    return nodes


def format_text(nodes: list[dict]) -> str:
    lines = []
    for n in nodes:
        pad = "  " * n["depth"]
        ok = {True: "ok", False: "MODIFIED", None: "unknown"}[n["matches_record"]]
        lines.append(f"{pad}{n['path']}  [{ok}]  {(n['hash'] or '-')[:16]}")
        if n.get("stage"):
            lines.append(f"{pad}  stage {n['stage']}  step={n.get('step')}  seed={n.get('seed')}  "
                         f"commit={(n.get('git_commit') or '-')[:12]}")  # fmt: skip
            params = json.dumps(n.get("params"), sort_keys=True)
            lines.append(f"{pad}  params {params[:200]}{'...' if len(params) > 200 else ''}")
    return "\n".join(lines)
