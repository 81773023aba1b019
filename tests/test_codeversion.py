"""A step's code version (sublim.codeversion): what changes it, what does not, and the job's
check of it (script.check_code). The end-to-end trigger, through Snakemake's own params check,
is in test_workflow (test_a_library_change_reruns_only_the_steps_that_run_it)."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sublim import codeversion, dvcexport, manifest, script

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["student", "reference", "mnist_experiment", "aggregate", "figure", "theory_mnist", "filter"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the sublim package and the step scripts, with codeversion reading the copy."""
    pkg = tmp_path / "src" / "sublim"
    shutil.copytree(codeversion.ROOT, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "workflow" / "scripts", tmp_path / "scripts")
    monkeypatch.setattr(codeversion, "ROOT", pkg)
    monkeypatch.setenv(manifest.CACHE_ENV, str(tmp_path / "cache" / "sha256"))
    return tmp_path


def versions(root: Path) -> dict[str, str]:
    return {s: codeversion.code_version(root / "scripts" / f"{s}.py") for s in SCRIPTS}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_the_version_does_not_depend_on_where_the_code_lies(tree, monkeypatch):
    copy = versions(tree)
    monkeypatch.setattr(codeversion, "ROOT", (REPO / "src" / "sublim").resolve())
    here = {s: codeversion.code_version(REPO / "workflow" / "scripts" / f"{s}.py") for s in SCRIPTS}
    assert copy == here


def insert_in_body(path: Path, func: str, line: str) -> None:
    """Put ``line`` into module-level function ``func`` after its docstring."""
    text = path.read_text()
    fn = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == func)
    at = fn.body[1] if ast.get_docstring(fn) else fn.body[0]
    lines = text.splitlines(keepends=True)
    indent = lines[at.lineno - 1][: at.col_offset]
    lines.insert(at.lineno - 1, indent + line + "\n")
    path.write_text("".join(lines))


def test_comments_docstrings_and_blank_lines_change_nothing(tree):
    before = versions(tree)
    f = tree / "src" / "sublim" / "training.py"
    # inside train(), which every training step runs: a comment line, then a blank line
    insert_in_body(f, "train", "# a new comment")
    insert_in_body(f, "train", "")
    fn = next(n for n in ast.parse(f.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert ast.get_docstring(fn), "train has a docstring to reword"
    lines = f.read_text().splitlines(keepends=True)
    doc, last = fn.body[0], fn.body[-1]
    lines[doc.lineno - 1] = lines[doc.lineno - 1].replace('"""', '"""Reworded. ', 1)
    lines[last.lineno - 1] = lines[last.lineno - 1].rstrip("\n") + "  # a trailing comment   \n"
    f.write_text("".join(lines))
    assert versions(tree) == before
    # the control: the same places, changed as code, do change the training steps' versions
    insert_in_body(f, "train", "_ = 0")
    assert {s for s, v in versions(tree).items() if v != before[s]} == {"student", "reference"}


def test_a_code_change_reruns_what_runs_it_and_nothing_else(tree):
    before = versions(tree)
    src = tree / "src" / "sublim"

    def changed() -> set[str]:
        now = versions(tree)
        return {s for s in SCRIPTS if now[s] != before[s]}

    # a constant nothing reads changes no step
    edit(src / "mnist.py", "\ndef ", "\n_NEW_CONSTANT = 1\n\n\ndef ")
    assert changed() == set()
    # the MNIST experiment's code: its own step, not the language models' nor the statistics
    insert_in_body(src / "mnist.py", "run_experiment", "_ = _NEW_CONSTANT")
    assert changed() == {"mnist_experiment"}
    before = versions(tree)
    # the training loop: a function nothing calls changes no step; called from train(), it
    # changes every step that trains and nothing that only reads results
    edit(src / "training.py", "\ndef train(", "\ndef _unused_helper():\n    return 1\n\n\ndef train(")
    assert changed() == set()
    insert_in_body(src / "training.py", "train", "_unused_helper()")
    assert changed() == {"student", "reference"}
    before = versions(tree)
    # the statistics' per-question table: the step that builds the tables, not the figures'
    insert_in_body(src / "report.py", "per_question", "_ = 2")
    assert changed() == {"aggregate"}
    before = versions(tree)
    # the step script itself
    edit(tree / "scripts" / "filter.py", "a = ap.parse_args()", "a = ap.parse_args()\n    a = a")
    assert changed() == {"filter"}


def test_closure_covers_the_registries_modules_whole_and_package_data(tree):
    sl = codeversion.closure_slices(tree / "scripts" / "filter.py")
    root = tree / "src" / "sublim"
    for m in ("code.py", "cot.py", "numbers.py"):  # the modality registry holds them as values
        assert sl[root / "modalities" / m] is None
    sl = codeversion.closure_slices(tree / "scripts" / "evaluate.py")
    assert root / "traits" / "misalignment_questions.txt" in sl


def test_the_version_is_remembered_until_a_file_changes(tree, monkeypatch):
    monkeypatch.setattr(codeversion, "RACY_SECONDS", -1.0)  # the copy's files are seconds old
    s = (tree / "scripts" / "student.py").resolve()
    v = codeversion.code_version(s)
    entry = codeversion._remembered(s)
    assert json.loads(entry.read_text())["stats"] == codeversion._tree_stats(s)
    entry.write_text(json.dumps({"stats": codeversion._tree_stats(s), "describe": {"x": "y"}}))
    assert codeversion.describe(s) == {"x": "y"}, "a valid entry is used as it stands"
    edit(tree / "src" / "sublim" / "training.py", "\ndef train(", "\n_CHANGED = 3\n\n\ndef train(")
    assert codeversion.describe(s) != {"x": "y"}, "a changed tree is described afresh"
    assert codeversion.code_version(s) == v, "an unused new constant changes nothing"
    entry.write_text("{not json")
    assert codeversion.code_version(s) == v, "a broken entry is ignored"


def test_a_job_refuses_code_other_than_planned_and_records_it(tree, capsys, monkeypatch):
    s = str(tree / "scripts" / "select_prompts.py")
    v = codeversion.code_version(s)
    monkeypatch.setattr(manifest, "STEP_CODE", None)
    script.check_code([s, "--ids", "x", "--code", v])
    assert manifest.STEP_CODE["version"] == v
    assert manifest.build_manifest("x", {}, {}, None, 0.0)["code"]["version"] == v
    with pytest.raises(SystemExit) as e:
        script.check_code([s, "--code", "0123456789abcdef"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed after Snakemake planned this job" in err[0] and v in err[0]
    monkeypatch.setattr(manifest, "STEP_CODE", None)
    script.check_code([s, "--ids", "x"])  # run by hand, without --code: no check, no record
    assert manifest.STEP_CODE is None


def test_a_step_script_accepts_code_and_fails_in_one_line_on_a_stale_one(tmp_path):
    cmd = [sys.executable, str(REPO / "workflow" / "scripts" / "select_prompts.py"), "--code", "0" * 16, "--help"]
    env = {**os.environ, manifest.CACHE_ENV: str(tmp_path / "cache")}
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "planned 0000000000000000" in res.stderr


def test_dvc_commands_leave_the_code_version_out():
    cmd = "python workflow/scripts/student.py --code 0123456789abcdef --out x"
    assert dvcexport.portable_command(cmd) == "python workflow/scripts/student.py --out x"


def test_decorators_strings_whitespace_and_stray_files(tree):
    src = tree / "src" / "sublim"
    before = versions(tree)
    for stray in (".training.py.swp", "training.py~", ".DS_Store"):  # editor and system litter
        (src / stray).write_text("x")
    assert versions(tree) == before
    # a decorator is part of what it decorates (training.TrainConfig, read by every training step)
    config = "@dataclasses.dataclass\nclass TrainConfig"
    edit(src / "training.py", config, config.replace("dataclass\n", "dataclass(eq=False)\n"))
    now = versions(tree)
    assert now["student"] != before["student"] and now["mnist_experiment"] == before["mnist_experiment"]
    # blank lines and trailing spaces inside a multi-line string are the string's value
    f = src / "training.py"
    edit(f, "\ndef train(", '\n_PROMPT = """first\n\nsecond   \n"""\n\n\ndef train(')
    insert_in_body(f, "train", "_ = _PROMPT")
    before = versions(tree)
    edit(f, '"""first\n\nsecond   \n"""', '"""first\nsecond   \n"""')
    assert versions(tree)["student"] != before["student"], "a blank line removed from a string"
    before = versions(tree)
    edit(f, '"""first\nsecond   \n"""', '"""first\nsecond\n"""')
    assert versions(tree)["student"] != before["student"], "trailing spaces removed from a string"


def test_import_of_a_dotted_module_counts_it(tree):
    s = tree / "scripts" / "custom.py"
    s.write_text("import sublim.steps\n\nsublim.steps.mnist_experiment('x', data='y')\n")
    before = codeversion.code_version(s)
    insert_in_body(tree / "src" / "sublim" / "mnist.py", "run_experiment", "_ = 0")
    assert codeversion.code_version(s) != before


@pytest.mark.parametrize(
    "a, b, same",
    [
        ('def f():\n    "doc"\n    return 1\n', 'def f():\n    "other doc"\n    return 1\n', True),
        ('def f(): "doc"; return 1\n', 'def f(): "doc"; return 2\n', False),  # code on the docstring's line
        ("x = 1  # one\r\ny = 2\r\n", "x = 1\ny = 2\n", True),  # CRLF and comments
        ("x = 1\x0c\ny = 2\n", "x = 1\x0c\ny = 3\n", False),  # a form feed does not shift the lines
        ("s = '#' + 'a'\n", "s = '#' + 'b'\n", False),  # a '#' inside a string is no comment
    ],
)
def test_normalised_source(tmp_path, a, b, same):
    fa, fb = tmp_path / "a.py", tmp_path / "b.py"
    fa.write_bytes(a.encode())
    fb.write_bytes(b.encode())
    assert (codeversion.normalized_source(fa) == codeversion.normalized_source(fb)) is same
