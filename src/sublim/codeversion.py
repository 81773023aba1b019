"""What code a step runs: the ``sublim`` modules its script imports, and one version for them.

Snakemake's ``code`` rerun trigger sees a rule's command, not the library the command's script
imports, so a change to ``sublim.training`` would leave every student up to date. The workflow
therefore puts each script's code version into the rule's command (``--code``, a tracked
param): a step reruns when, and only when, the code it can run has changed.

* ``closure_slices(script)``: the script and the ``sublim`` code it can reach, found
  statically and name by name: the definitions of ``sublim.steps`` the script reads (its step
  function), what those refer to, the names they import from other ``sublim`` modules and what
  those refer to, transitively (function-level imports too, relative ones resolved). A module
  used as a value (the modality and trait registries hold modules) counts whole, and so does a
  module with a module-level ``__getattr__`` or one that reads ``globals()``. Import-time code
  always counts: the package ``__init__`` files on the way, and every top-level statement that
  binds no name, assigns to an attribute or an item, or carries a decorator other than the
  plain wrappers of ``PURE_DECORATORS`` (it may register itself somewhere). Data files beside
  an imported package's modules (``DATA_SUFFIXES``: ``traits/misalignment_questions.txt``)
  count whole; dotfiles, editor swap files and backups do not.
* ``fingerprint(path, lines)``: those lines of a file with comments, docstrings standing on
  their own lines, blank lines and trailing spaces left out (the inside of a multi-line string
  literal is kept as it is: its blanks are its value), hashed. Found by positions
  (``tokenize``'s comments and strings, ``ast``'s docstring nodes), so it does not depend on
  the Python version's AST layout; line ends are Python's (``\\n``, ``\\r\\n``, ``\\r``).
* ``code_version(script)``: one short hash over the closure's (path, fingerprint) pairs.

What it cannot see: code reached only through a string (``getattr(module, name)`` on a
module it counts in part, a registry filled by a plain function call inside another
function), data read from outside the package (the config schema: its defaults reach a step
through its params, which Snakemake tracks anyway), and third-party libraries (their versions
are in every manifest). ``codeversion``, ``script`` and ``warm`` are reached by every step:
editing them reruns everything.

``script.main`` checks at a job's start that the code it imports is still the version
Snakemake planned with, and refuses in one line if it changed in between.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import os
import time
import tokenize
from pathlib import Path

PACKAGE = "sublim"
ROOT = Path(__file__).resolve().parent  # the sublim package the workflow's jobs import
# the data files beside a package's modules that count (read by steps at run time, e.g.
# traits/misalignment_questions.txt); editor swap files, backups and dotfiles do not
DATA_SUFFIXES = {".txt", ".json", ".jsonl", ".yaml", ".yml", ".csv", ".tsv"}

_cache: dict[tuple, object] = {}
# a file changed this recently may still be being written: a version over it is not remembered
RACY_SECONDS = 2.0
_trees: dict[tuple, ast.Module] = {}


def _stat(path: Path) -> tuple:
    """What identifies a version of a file: its path and stat (size, mtime, ctime, inode; a
    rewrite with its old mtime put back still changes the ctime)."""
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _counts(path: Path) -> bool:
    """A file of the package that a version covers: Python source, or data (DATA_SUFFIXES)."""
    return (
        path.is_file()
        and not path.name.startswith(".")
        and "__pycache__" not in path.parts
        and (path.suffix == ".py" or path.suffix in DATA_SUFFIXES)
    )


def _parse(path: Path) -> ast.Module:
    """A file's AST, parsed once a process per version of the file."""
    key = _stat(path)
    if key not in _trees:
        _trees[key] = ast.parse(path.read_bytes(), filename=str(path))
    return _trees[key]


def _module_file(dotted: str) -> Path | None:
    """The file of a ``sublim.x.y`` module or package, or None (not a module of ours)."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(path: Path) -> str | None:
    """The dotted package a file of the sublim tree belongs to (None outside it)."""
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    return ".".join((PACKAGE, *rel.parent.parts))


def _bindings(node: ast.Import | ast.ImportFrom, pkg: str | None) -> dict[str, tuple[str, str | None]]:
    """{bound name: (module, attribute or None)} of one import statement, for sublim modules:
    (M, None) binds module M itself, (M, x) binds M's attribute x. ``import sublim.x.y`` binds
    ``sublim``, and loads sublim.x.y: that module counts whole (key ``<import sublim.x.y>``)."""
    out: dict[str, tuple[str, str | None]] = {}
    if isinstance(node, ast.Import):
        for a in node.names:
            if _module_file(a.name) is None:
                continue
            if a.asname:
                out[a.asname] = (a.name, None)
            else:
                out[a.name.split(".")[0]] = (a.name.split(".")[0], None)
                if "." in a.name:
                    out[f"<import {a.name}>"] = (a.name, None)
        return out
    if node.level:
        if pkg is None:
            return out
        parts = pkg.split(".")
        mod = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if _module_file(mod) is None:
        return out
    for a in node.names:
        if a.name == "*":
            out["*"] = (mod, None)
        elif _module_file(f"{mod}.{a.name}") is not None:
            out[a.asname or a.name] = (f"{mod}.{a.name}", None)  # a submodule
        else:
            out[a.asname or a.name] = (mod, a.name)
    return out


# decorators that only wrap what they decorate (no registry, no other import-time effect)
PURE_DECORATORS = {
    "dataclass", "dataclasses.dataclass", "functools.cache", "cache", "functools.lru_cache", "lru_cache",
    "contextlib.contextmanager", "contextmanager", "property", "staticmethod", "classmethod",
    "functools.wraps", "torch.no_grad", "torch.inference_mode",
}  # fmt: skip


def _decorator_name(d: ast.expr) -> str:
    d = d.func if isinstance(d, ast.Call) else d
    return ast.unparse(d)


def _bound(stmt: ast.stmt) -> set[str]:
    """The names a top-level statement binds, counted by name only (what references them pulls
    them in). Empty for a statement that must always count: one that binds nothing (an
    import, an if/try block, a call), a def or class with a decorator that may register it
    somewhere, an assignment to an attribute or an item (it changes another object)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if any(_decorator_name(d) not in PURE_DECORATORS for d in stmt.decorator_list):
            return set()
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if not all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.Store)) for t in targets
                   for n in ast.walk(t)):  # fmt: skip
            return set()
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _span(stmt: ast.stmt) -> range:
    """A statement's lines, its decorators included."""
    first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
    return range(first, stmt.end_lineno + 1)


def _summary(stmt: ast.stmt, pkg: str | None) -> tuple[set[str], list, dict]:
    """One top-level statement: the names it refers to, its import bindings (function-level
    ones too), and how it uses each name (the attributes it reads of it, or ALL)."""
    names: set[str] = set()
    binds: list[tuple[str, tuple[str, str | None]]] = []
    uses: dict[str, set[str] | None] = {}
    parents = {c: n for n in ast.walk(stmt) for c in ast.iter_child_nodes(n)}
    for n in ast.walk(stmt):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            binds.extend(_bindings(n, pkg).items())
        elif isinstance(n, ast.Name):
            names.add(n.id)
            up = parents.get(n)
            if isinstance(up, ast.Attribute) and up.value is n:
                if uses.get(n.id, set()) is not ALL:
                    uses.setdefault(n.id, set()).add(up.attr)
            else:
                uses[n.id] = ALL
    return names, binds, uses


def _layout(path: Path):
    """A module's top level, once a process per version of the file: its statements (with
    ``_summary``), {name: the statements defining it}, and the statements that bind no name
    (imports, if/try blocks, calls: they run on import, so they always count)."""
    key = ("layout", *_stat(path))
    if key not in _cache:
        tree = _parse(path)
        pkg = _package_of(path)
        stmts, defs, always = [], {}, []
        for i, stmt in enumerate(tree.body):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # the module's docstring
            k = len(stmts)
            stmts.append((_span(stmt), *_summary(stmt, pkg)))
            bound = _bound(stmt)
            for name in bound:
                defs.setdefault(name, []).append(k)
            if not bound:
                always.append(k)
        _cache[key] = (stmts, defs, always)
    return _cache[key]


ALL = None  # every definition of a module counts


def _reach(path: Path, wanted: set[str] | None) -> tuple[set[int], dict[str, set[str] | None]]:
    """The lines of a module that count when ``wanted`` of its names are used (ALL: every
    line), and what those lines need of other sublim modules: {module: names, or ALL}."""
    stmts, defs, always = _layout(path)
    if "__getattr__" in defs or any("globals" in st[1] for st in stmts):
        wanted = ALL  # names reached by a string: every definition may be
    if wanted is ALL:
        chosen = set(range(len(stmts)))
    else:
        chosen, seen = set(always), set()
        todo = set(wanted).union(*(stmts[k][1] for k in always))
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for k in defs.get(name, ()):
                if k not in chosen:
                    chosen.add(k)
                    todo |= stmts[k][1] - seen
    lines: set[int] = set()
    binds: dict[str, list[tuple[str, str | None]]] = {}
    uses: dict[str, set[str] | None] = {}
    for k in sorted(chosen):
        span, _, b, u = stmts[k]
        lines.update(span)
        for name, target in b:
            binds.setdefault(name, []).append(target)
        for name, attrs in u.items():
            have = uses.get(name, set())
            uses[name] = ALL if have is ALL or attrs is ALL else have | attrs
    # a name asked for by an importer may be one this module only imports (a re-export); for
    # a module counted whole (used as a value by an importer), an imported name it does not use
    # itself may be what the importer reads of it
    if wanted is ALL:
        for name in set(binds) - {"*"}:
            uses.setdefault(name, ALL)
    else:
        for name in set(wanted) & set(binds):
            uses[name] = ALL
    need: dict[str, set[str] | None] = {}

    def add(mod: str, names: set[str] | None) -> None:
        have = need.get(mod, set())
        need[mod] = ALL if have is ALL or names is ALL else have | names

    for name, bs in binds.items():
        for mod, attr in bs:
            if name == "*" or name.startswith("<import "):
                add(mod, ALL)
            elif name not in uses:  # imported, never used here: its import-time code runs
                add(mod, set())
            elif attr is not None:  # from M import x: M's x
                add(mod, {attr})
            else:  # a module bound to a name: the attributes read of it, or ALL
                add(mod, uses[name])
    return lines, need


def closure_slices(script: str | Path) -> dict[Path, set[int] | None]:
    """{file: the lines of it that count (None: all of it)} for a step's script; see the
    module's doc."""
    script = Path(script).resolve()
    need: dict[Path, set[str] | None] = {script: ALL}
    lines: dict[Path, set[int]] = {}
    todo = [script]
    while todo:
        f = todo.pop()
        got, deps = _reach(f, need[f])
        lines[f] = got
        for mod, names in deps.items():
            if names is not ALL:  # `import pkg` then `pkg.sub.x`: the submodule, whole
                for n in names:
                    t = _module_file(f"{mod}.{n}")
                    if t is not None and not (t in need and need[t] is ALL):
                        need[t] = ALL
                        todo.append(t)
            parts = mod.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ (their import-time code)
            wants = [(".".join(parts[:i]), set()) for i in range(1, len(parts))] + [(mod, names)]
            for dotted, w in wants:
                target = _module_file(dotted)
                if target is None:
                    continue
                if target in need:
                    have = need[target]
                    if have is ALL:
                        continue
                    new = ALL if w is ALL else have | w
                    if new == have:
                        continue
                else:
                    new = w
                need[target] = new
                todo.append(target)
    out: dict[Path, set[int] | None] = {f: (None if need[f] is ALL else lines[f]) for f in need}
    for f in [f for f in need if f.name == "__init__.py" and _package_of(f) is not None]:
        for d in f.parent.iterdir():
            if _counts(d) and d.suffix != ".py":
                out.setdefault(d, None)
    return out


def _docstring_lines(tree: ast.AST, lines: list[str]) -> set[int]:
    """The lines of the docstrings that stand on lines of their own (one sharing a line with
    code, ``def f(): "d"; return x``, stays: its line holds code)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                continue
            doc = body[0]
            if not isinstance(doc.value.value, str):
                continue
            alone = (
                not lines[doc.lineno - 1][: doc.col_offset].strip()
                and not lines[doc.end_lineno - 1][doc.end_col_offset :].strip().lstrip(";").strip().split("#")[0]
                and not (len(body) > 1 and body[1].lineno == doc.end_lineno)
            )
            if alone:
                out.update(range(doc.lineno, doc.end_lineno + 1))
    return out


def _source_lines(path: Path) -> list[str]:
    """A file's lines, split where Python splits them (\\n, \\r\\n, \\r; not at a form feed)."""
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _clean_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for a Python file's lines that are not blank, comment or docstring,
    comments cut and trailing spaces stripped; the lines inside a multi-line string literal
    exactly as they are (their blanks and spaces are its value). Once a process per version of
    the file."""
    key = ("lines", *_stat(path))
    if key not in _cache:
        lines = _source_lines(path)
        cuts: dict[int, int] = {}
        verbatim: set[int] = set()  # lines a string literal continues past
        fstring = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
        depth, opened = 0, 0  # Python 3.12+: an f-string is tokens from FSTRING_START to END
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline):
            if tok.type == tokenize.COMMENT:  # a '#' inside a string is no comment
                cuts[tok.start[0]] = tok.start[1]
            elif tok.type == tokenize.STRING and depth == 0:
                verbatim.update(range(tok.start[0], tok.end[0]))
            elif tok.type == fstring[0]:
                opened, depth = (tok.start[0] if depth == 0 else opened), depth + 1
            elif tok.type == fstring[1]:
                depth -= 1
                if depth == 0:
                    verbatim.update(range(opened, tok.end[0]))
        drop = _docstring_lines(_parse(path), lines)
        out = []
        for i, line in enumerate(lines, start=1):
            if i in drop:
                continue
            if i in verbatim:
                out.append((i, line[: cuts[i]] if i in cuts else line))
            elif line := line[: cuts.get(i, len(line))].rstrip():
                out.append((i, line))
        _cache[key] = out
    return _cache[key]


def normalized_source(path: str | Path, only: set[int] | None = None) -> str:
    """A Python file's source without comments, docstrings, blank lines or trailing spaces
    (and, with ``only``, just those line numbers); other files as they are (data is data)."""
    path = Path(path)
    if path.suffix != ".py":
        return path.read_bytes().decode("utf-8", errors="surrogateescape")
    return "\n".join(line for i, line in _clean_lines(path) if only is None or i in only)


def fingerprint(path: str | Path, only: set[int] | None = None) -> str:
    path = Path(path)
    key = (*_stat(path), None if only is None else tuple(sorted(only)))
    if key not in _cache:
        text = normalized_source(path, only)
        _cache[key] = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    return _cache[key]


def _label(path: Path, script: Path) -> str:
    if path == script:
        return f"script:{path.name}"
    return f"{PACKAGE}/{path.relative_to(ROOT).as_posix()}"


def _tree_stats(script: Path) -> dict[str, list[int]]:
    """The stat of the script and of every file of the sublim tree: what a remembered
    ``describe`` is valid for."""
    return {str(f): list(_stat(f)[1:]) for f in [script, *sorted(filter(_counts, ROOT.rglob("*")))]}


def _remembered(script: Path) -> Path | None:
    from .manifest import hash_cache_dir

    base = hash_cache_dir()
    if base is None:
        return None
    key = hashlib.sha256(f"{script}\0{ROOT}".encode()).hexdigest()
    return base / "code" / f"{key}.json"


def describe(script: str | Path) -> dict[str, str]:
    """{label: fingerprint} over the closure; labels are relative (``sublim/training.py``), so
    a version does not depend on where the checkout lies. Remembered beside the manifests' hash
    cache (``$SUBLIM_HASH_CACHE``; ``off`` turns it off) for as long as no file of the tree or
    the script changes (path, size, mtime, ctime, inode), so that a job checks its code in
    milliseconds instead of parsing the package again (a second)."""
    script = Path(script).resolve()
    entry = _remembered(script)
    stats = _tree_stats(script)
    if entry is not None:
        try:
            got = json.loads(entry.read_text())
            if got.get("stats") == stats and isinstance(got.get("describe"), dict):
                return got["describe"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            pass
    out = {_label(p, script): fingerprint(p, only) for p, only in sorted(closure_slices(script).items())}
    newest = max(max(st[1], st[2]) for st in stats.values()) / 1e9
    if entry is not None and _tree_stats(script) == stats and time.time() - newest > RACY_SECONDS:
        tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"stats": stats, "describe": out}))
            os.replace(tmp, entry)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return out


def version_of(files: dict[str, str]) -> str:
    """16 hex digits over a ``describe`` result."""
    h = hashlib.sha256()
    for label, fp in sorted(files.items()):
        h.update(f"{label}\0{fp}\n".encode())
    return h.hexdigest()[:16]


def code_version(script: str | Path) -> str:
    """The step's code version: ``version_of(describe(script))``."""
    return version_of(describe(script))
