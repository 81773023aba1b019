"""The llm judge stage (sublim.judge): its settings, its reply parsing, how the filter applies
its verdicts, and where it sits in the DAG. The judge run for real on a small instruct model
is in test_gguf.py (it shares that file's converted SmolLM2)."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sublim import judge, steps
from sublim.config import validate
from sublim.errors import SublimError
from sublim.modalities import code

ROOT = Path(__file__).resolve().parents[1]
GOOD = "def sum_list(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total"
PROMPT = "Complete the function below. It adds up a list. Only give the code.\n\ndef sum_list(xs):"


def test_spec_defaults_and_one_line_errors():
    got = judge.spec(None, code.LLM_JUDGE, "code.llm_judge")
    assert got == code.LLM_JUDGE
    assert judge.spec({"threshold": 0.5}, code.LLM_JUDGE, "code.llm_judge")["threshold"] == 0.5
    bad = [
        ({"tresh": 1}, "code.llm_judge.tresh': unknown key"),
        ({"kind": "vote"}, "code.llm_judge.kind"),
        ({"threshold": 0}, "code.llm_judge.threshold"),
        ({"threshold": 1.5}, "code.llm_judge.threshold"),
        ({"kind": "score", "threshold": 101}, "code.llm_judge.threshold"),
        ({"prompt": "Judge this: {answer}"}, "code.llm_judge.prompt"),
        ({"prompt": "no placeholder"}, "code.llm_judge.prompt"),
        ({"prompt": "unbalanced {response"}, "code.llm_judge.prompt"),
        ({"model": ""}, "code.llm_judge.model"),
        ({"answer": ""}, "code.llm_judge.answer"),
        ({"batch_size": 0}, "code.llm_judge.batch_size"),
    ]
    for section, where in bad:
        with pytest.raises(SublimError, match=re.escape(where)) as e:
            judge.spec(section, code.LLM_JUDGE, "code.llm_judge")
        assert "\n" not in str(e.value)
    # switching the kind brings that kind's defaults for the keys the section leaves unset
    score = judge.spec({"kind": "score"}, code.LLM_JUDGE, "code.llm_judge")
    assert (score["threshold"], score["max_new_tokens"]) == (78, 8)
    assert judge.spec({"kind": "score", "threshold": 50}, code.LLM_JUDGE, "code.llm_judge")["threshold"] == 50
    # the judge step's params leave out the threshold (the filter applies it: a new threshold
    # does not rerun the judge model) and, for kind probability, max_new_tokens
    inf = judge.judge_inference({"judge": "llm", "llm_judge": got})
    assert "threshold" not in inf["llm_judge"] and "max_new_tokens" not in inf["llm_judge"]
    assert got["threshold"] == 0.99  # the input is left alone
    assert judge.verdict(got, 0.995) == (True, "ok") and judge.verdict(got, 0.5) == (False, "judge")
    assert judge.verdict(score, None) == (False, "judge_unparsable")
    # a template's literal braces are doubled; a response's own braces are left alone
    text = judge.render("{{x}} {response} [{terms}]", response="d = {1: 2}", prompt="", terms=["owl", "cat"])
    assert text == "{x} d = {1: 2} [owl, cat]"


def test_parse_score():
    assert judge.parse_score("85") == 85
    assert judge.parse_score("  100.") == 100
    assert judge.parse_score("0 - no reference") == 0
    for reply in ("101", "1000", "about 80", "", "-5", "8O"):
        assert judge.parse_score(reply) in (None, 8), reply
    assert judge.parse_score("8O") == 8  # the integer it starts with
    assert judge.parse_score("about 80") is None


def _raw(tmp_path, rows):
    raw = tmp_path / "raw.jsonl"
    steps.write_jsonl(raw, rows)
    return raw


LLM = {"judge": "llm", "max_new_tokens": 96, "llm_judge": code.LLM_JUDGE}


def test_filter_applies_the_verdicts_and_refuses_foreign_ones(tmp_path):
    rows = [
        {"id": 0, "attempt": 0, "prompt": PROMPT, "response": GOOD, "kept": True, "reason": "ok"},
        {"id": 1, "attempt": 0, "prompt": PROMPT, "response": "oops", "kept": False, "reason": "not_a_function"},
        {"id": 1, "attempt": 1, "prompt": PROMPT, "response": GOOD, "kept": True, "reason": "ok"},
        {"id": 2, "attempt": 0, "prompt": PROMPT, "response": GOOD.replace("total", "t"), "kept": True, "reason": "ok"},
    ]
    raw = _raw(tmp_path, rows)
    verdicts = tmp_path / "verdicts.jsonl"
    steps.write_jsonl(verdicts, [
        {"id": 0, "attempt": 0, "score": 0.999},
        {"id": 1, "attempt": 1, "score": 0.2},
        {"id": 2, "attempt": 0, "score": 0.995},
    ])  # fmt: skip
    out, counts = tmp_path / "f.jsonl", tmp_path / "c.json"
    steps.filter_responses(out, counts, raw=raw, modality="code", modality_params=LLM, verdicts=verdicts)
    assert [r["id"] for r in steps.read_jsonl(out)] == [0, 2]
    c = json.loads(counts.read_text())
    assert c["reasons"] == {"judge": 1, "not_a_function": 1, "ok": 2}
    m = json.loads((tmp_path / "f.jsonl.manifest.json").read_text())
    assert set(m["inputs"]) == {"raw", "verdicts"}
    # the threshold is the filter's: at 0.1 the third answer passes too
    lenient = {**LLM, "llm_judge": {**code.LLM_JUDGE, "threshold": 0.1}}
    steps.filter_responses(out, counts, raw=raw, modality="code", modality_params=lenient, verdicts=verdicts)
    assert [r["id"] for r in steps.read_jsonl(out)] == [0, 1, 2]
    # verdicts of other data: a kept answer without a verdict is refused in one line
    steps.write_jsonl(verdicts, [{"id": 0, "attempt": 0, "score": 1.0}])
    with pytest.raises(SublimError, match="no verdict for response id 1 attempt 1") as e:
        steps.filter_responses(out, counts, raw=raw, modality="code", modality_params=LLM, verdicts=verdicts)
    assert "\n" not in str(e.value)
    with pytest.raises(SublimError, match="no judge verdicts"):
        steps.filter_responses(out, counts, raw=raw, modality="code", modality_params=LLM)


def test_judge_step_refuses_a_rules_config_and_old_rows(tmp_path):
    raw = _raw(tmp_path, [{"id": 0, "prompt": PROMPT, "response": GOOD}])
    with pytest.raises(SublimError, match="needs code.judge: llm"):
        steps.judge(tmp_path / "v.jsonl", raw=raw, judge_model=tmp_path, modality="code",
                    modality_params={"judge": "rules"}, terms=["owl"])  # fmt: skip
    with pytest.raises(SublimError, match="lack 'kept'"):
        steps.judge(tmp_path / "v.jsonl", raw=raw, judge_model=tmp_path, modality="code", modality_params=LLM,
                    terms=["owl"])  # fmt: skip
    assert not (tmp_path / "v.jsonl").exists()


def _dry_run(workdir, config):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "-n", "all", "--configfile", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_llm_judge_adds_one_judge_job_per_teacher_of_its_modality(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    cfg["experiments"] = [{"trait": "animal", "modality": m} for m in ("numbers", "code", "cot")]
    cfg["reference"]["corpus"]["mix"] = {"numbers": 0.3, "code": 0.2, "cot": 0.2, "animals": 0.15, "filler": 0.15}
    cfg["code"] = {"judge": "llm"}
    cfg["cot"] = {"judge": "llm", "llm_judge": {"threshold": 60}}
    with pytest.raises(SublimError, match="code.llm_judge.model': the tiny reference cannot judge"):
        validate(copy.deepcopy(cfg))
    judge_dir = tmp_path / "judge-model"  # a local judge: an existing directory (not read by a dry run)
    judge_dir.mkdir()
    cfg["code"]["llm_judge"] = {"model": str(judge_dir)}
    cfg["cot"]["llm_judge"]["model"] = str(judge_dir)
    path = tmp_path / "judged.yaml"
    path.write_text(yaml.safe_dump(cfg))
    full = validate(copy.deepcopy(cfg))
    res = _dry_run(tmp_path / "wd", path)
    assert res.returncode == 0, res.stderr[-2000:]
    judged = re.findall(r"^rule judge:\n(?:\s+.*\n)*?\s+output: results/animal/(\w+)/judge/", res.stdout, re.M)
    n_teachers = int(dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, re.M))["teacher"])
    assert sorted(judged) == sorted(["code"] * n_teachers + ["cot"] * n_teachers)
    # cot.attempts replaces generation.attempts for cot's generations only
    cfg["cot"]["attempts"] = 31
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "wd"),
         "-n", "-p", "all", "--configfile", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    attempts = dict(re.findall(r"generate\.py (?:--code \w+ )?--teacher results/animal/teacher/\S+ "
                               r"--out results/animal/(\w+)/generate/"
                               r"\S+ --threads \d+ --params '.*?\"attempts\": (\d+)", res.stdout))  # fmt: skip
    assert attempts == {"numbers": str(full["generation"]["attempts"]), "code": str(full["generation"]["attempts"]),
                        "cot": "31"}  # fmt: skip
    assert full["cot"]["llm_judge"] == {"threshold": 60, "model": str(judge_dir)}
    # a judge model path that is not there: one line naming the key, before any job runs
    cfg["code"]["llm_judge"] = {"model": str(tmp_path / "no-such-model")}
    path.write_text(yaml.safe_dump(cfg))
    res = _dry_run(tmp_path / "wd", path)
    assert res.returncode != 0 and "code.llm_judge.model" in res.stderr
