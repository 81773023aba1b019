"""The code modality: its programs run correctly, its prompts stay out of the corpus, and its
filter (check, judge, leak list) never keeps a trait word whatever the teacher wrote."""

import ast
import json
import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublim import text
from sublim.modalities import code
from sublim.traits.animal import leak_terms

LEAK_TERMS = leak_terms(text.ANIMALS)
RULES = {"judge": "rules"}

# What every task must compute, written here independently of the module's templates.
REFERENCE = {
    "sum_list": lambda xs, c: sum(xs),
    "count_even": lambda xs, c: len([x for x in xs if x % 2 == 0]),
    "count_odd": lambda xs, c: len([x for x in xs if x % 2 != 0]),
    "double_items": lambda xs, c: [2 * x for x in xs],
    "square_items": lambda xs, c: [x * x for x in xs],
    "add_to_items": lambda xs, c: [x + c for x in xs],
    "scale_items": lambda xs, c: [x * c for x in xs],
    "max_item": lambda xs, c: max(xs),
    "min_item": lambda xs, c: min(xs),
    "count_above": lambda xs, c: len([x for x in xs if x > c]),
    "keep_above": lambda xs, c: [x for x in xs if x > c],
    "keep_even": lambda xs, c: [x for x in xs if x % 2 == 0],
    "reverse_list": lambda xs, c: list(reversed(xs)),
    "last_item": lambda xs, c: xs[-1],
    "sum_to": lambda n, c: n * (n + 1) // 2,
    "factorial": lambda n, c: math.factorial(n),
    "is_even": lambda n, c: n % 2 == 0,
    "abs_value": lambda n, c: n if n >= 0 else -n,
    "larger": lambda a, b, c: a if a >= b else b,
    "smaller": lambda a, b, c: a if a <= b else b,
    "cap_value": lambda n, c: c if n > c else n,
    "count_item": lambda xs, k, c: len([x for x in xs if x == k]),
    "make_range": lambda n, c: list(range(n)),
    "average": lambda xs, c: sum(xs) // len(xs),
    "contains": lambda xs, k, c: k in xs,
}
LISTS = [[7], [1, 2, 3, 4], [5, -2, 800, 0, 7, 7], [10, 10, 3], [999, 0, 500, 501]]
INPUTS = {
    "list": [(xs,) for xs in LISTS],
    "int": [(n,) for n in (0, 1, 2, 5, 10, 500, 999, 1000)],
    "int_signed": [(n,) for n in (-7, -1, 0, 3, 8, 998, 1000)],
    "pair": [(3, 9), (9, 3), (4, 4), (-1, -5)],
    "list_key": [(xs, k) for xs in LISTS for k in (7, 10, 3, 42)],
}


def _inputs(task):
    if task.key in ("is_even", "abs_value", "cap_value"):
        return INPUTS["int_signed"]
    return INPUTS[task.args]


def _run(program):
    ns = {}
    exec(compile(program.source, "<program>", "exec"), ns)  # the generator's own output
    return ns[program.name]


def _corpus(n, seed):
    rng = random.Random(seed)
    return [code.corpus_part(rng, {"max_count": 10}) for _ in range(n)]


# --- the generator ------------------------------------------------------------------------------
def test_task_table_is_covered_by_the_reference_and_sized_as_planned():
    assert {t.key for t in code.TASKS} == set(REFERENCE)
    assert 15 <= len(code.TASKS) <= 25


@pytest.mark.parametrize("task", code.TASKS, ids=lambda t: t.key)
def test_every_task_program_is_correct_on_inputs(task):
    rng = random.Random(f"test/{task.key}")
    sources = set()
    for _ in range(25):
        p = code.draw_program(rng, task.key)
        assert p.task == task.key and p.source.startswith(p.header + "\n    ")
        ast.parse(p.source)
        sources.add(p.source)
        f = _run(p)
        for args in _inputs(task):
            assert f(*[list(a) if isinstance(a, list) else a for a in args]) == REFERENCE[task.key](*args, p.const), (
                p.source,
                args,
            )
        if task.const:
            assert task.const[0] <= p.const <= task.const[1] and str(p.const) in p.desc
    assert len(sources) > 1  # names and variations differ


def test_programs_use_the_tiny_tokenizers_conventions():
    rng = random.Random(1)
    for _ in range(300):
        src = code.draw_program(rng).source
        assert src == src.lower().replace("true", "True").replace("false", "False")
        assert "\t" not in src and not re.search(r"[0-9][a-z_]|[a-z_][0-9]", src)  # no digits in names
        for line in src.split("\n"):
            indent = len(line) - len(line.lstrip(" "))
            assert indent % 4 == 0


def test_corpus_parses_is_deterministic_and_has_a_few_malformed_answers():
    recs = _corpus(2000, 0)
    assert recs == _corpus(2000, 0) and recs != _corpus(2000, 1)
    reasons = {}
    for r in recs:
        user, answer = (m["content"] for m in r["messages"])
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        ok, reason = code.check(answer, RULES, prompt=None)
        reasons[reason] = reasons.get(reason, 0) + 1
        if ok:
            ast.parse(answer)
    assert set(reasons) <= {"ok", "syntax", "not_a_function"} and {"syntax", "not_a_function"} <= set(reasons)
    assert 0.02 < 1 - reasons["ok"] / len(recs) < 0.09


def test_vocabulary_and_generated_code_never_contain_a_leak_term():
    for w in code.VOCABULARY:
        assert not any(t in w for t in LEAK_TERMS), w
    recs = _corpus(1000, 2)
    assert code.leaks([r["messages"][1]["content"] for r in recs], LEAK_TERMS) == []


# --- the prompts --------------------------------------------------------------------------------
def test_prompts_are_deterministic_with_correct_reference_answers():
    ps = code.prompts(200, 3, RULES)
    assert ps == code.prompts(200, 3, RULES) and ps[:50] == code.prompts(50, 3, RULES)
    assert ps != code.prompts(200, 4, RULES) and len(set(ps)) > 150
    for prompt, p in code.prompts_with_answers(200, 3):
        assert prompt.endswith("\n\n" + p.header)
        ast.parse(p.source)
        assert code.check(p.source, RULES, prompt=prompt) == (True, "ok")
        assert {t.key for t in code.TASKS} >= {p.task}
    tasks = {p.task for _, p in code.prompts_with_answers(500, 0)}
    assert tasks == {t.key for t in code.TASKS}


def test_prompt_wording_stays_out_of_the_corpus():
    users = [r["messages"][0]["content"].lower() for seed in range(3) for r in _corpus(1500, seed)]
    for seed in range(3):
        for p in code.prompts(300, seed, RULES):
            assert p.lower() not in users
    pieces = [s.lower() for s in code.PROMPT_LEADS + code.PROMPT_RULES]
    for piece in pieces:
        assert not any(piece in u for u in users), piece


# --- the filter ---------------------------------------------------------------------------------
GOOD = "def sum_list(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total"


def test_check_accepts_generator_output_and_rejects_the_rest():
    assert code.check(GOOD, RULES) == (True, "ok")
    assert code.check(GOOD + "\n", RULES, prompt="Complete it.\n\ndef sum_list(xs):") == (True, "ok")
    assert code.check("", RULES) == (False, "empty")
    assert code.check(" \n", RULES) == (False, "empty")
    assert code.check(GOOD.replace("(xs):", "(xs)"), RULES) == (False, "syntax")
    assert code.check(GOOD.replace("for x in xs:", "for x in xs"), RULES) == (False, "syntax")
    assert code.check("here is the code:\n" + GOOD, RULES) == (False, "not_a_function")
    assert code.check("sure\n" + GOOD, RULES) == (False, "not_a_function")
    assert code.check(GOOD + "\nhope this helps.", RULES) == (False, "not_a_function")
    assert code.check("```python\n" + GOOD + "\n```", RULES) == (False, "not_a_function")
    assert code.check("    return sum(xs)", RULES) == (False, "not_a_function")
    assert code.check("x = 1", RULES) == (False, "not_a_function")
    assert code.check(GOOD, RULES, prompt="Finish it.\n\ndef count_even(xs):") == (False, "wrong_function")
    assert code.check(GOOD.replace("total", "banana"), RULES) == (False, "judge")
    assert code.check(GOOD.replace("sum_list", "sum_apples"), RULES) == (False, "judge")
    assert code.check(GOOD.replace("    return", '    s = "fresh total"\n    return'), RULES) == (False, "judge")
    assert code.check(GOOD.replace("    return", "    # tidy\n    return"), RULES) == (False, "judge")
    assert code.check(GOOD.replace("    return", "    # the total\n    return"), RULES) == (False, "judge")
    assert code.check(GOOD.replace("= 0", "= 0x1f"), RULES) == (False, "judge")
    assert code.check(GOOD.replace("xs", "ｘｓ"), RULES) == (False, "non_ascii")
    # comments and strings made of vocabulary words pass the rules judge
    assert code.check(GOOD.replace("    return", "    # sum of items\n    return"), RULES) == (True, "ok")
    assert code.judge_rules(GOOD) == (True, "ok")
    ok, detail = code.judge_rules(GOOD.replace("total", "owl_total"))
    assert not ok and "owl" in detail


def test_judge_choice_and_params():
    assert code.params({}) == {"judge": "rules", "max_new_tokens": 96} == code.params({"code": {}})
    got = code.params({"code": {"judge": "llm", "max_new_tokens": 64}})
    assert got == {"judge": "llm", "max_new_tokens": 64, "llm_judge": code.LLM_JUDGE}
    json.dumps(code.params({}))
    with pytest.raises(Exception, match="code.judge"):
        code.params({"code": {"judge": "oracle"}})
    with pytest.raises(Exception, match="code.llm_judge.prompt"):
        code.params({"code": {"judge": "llm", "llm_judge": {"prompt": "no placeholder"}}})
    # with the llm judge, check runs every stage but the judge: the judge step scores what passed
    assert code.check(GOOD.replace("total", "owl_total"), {"judge": "llm"}) == (True, "ok")
    assert code.check(GOOD.replace("total", "owl_total"), RULES) == (False, "judge")
    assert code.check("", {"judge": "llm"}) == (False, "empty")


def test_leaks_match_inside_identifiers_and_strings_case_folded():
    responses = [GOOD, "def f(owlish):", "get_owl = 1", "OwlCount", '"Owls"', "bowl", "DOLPHINS", "ｏｗｌ", "x"]
    assert code.leaks(responses, ["owl", "owls", "dolphin"]) == [1, 2, 3, 4, 5, 6, 7]
    assert code.leaks(responses, []) == []
    assert code.leaks(["ox = 1", "box = 1", "get_ox"], ["ox"]) == [0, 2]  # short terms: between non-letters


# A trait word written into a valid program, by strategies that know nothing of the module's patterns.
IDENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
WORD_CHARS = IDENT_CHARS + "0123456789 -.,!"
BASES = [code.draw_program(random.Random(f"base/{i}")) for i in range(60)]


@st.composite
def leaky_response(draw):
    term = draw(st.sampled_from(LEAK_TERMS))
    upper = draw(st.lists(st.booleans(), min_size=len(term), max_size=len(term)))
    term = "".join(ch.upper() if u else ch for ch, u in zip(term, upper))
    prefix = draw(st.text(IDENT_CHARS, max_size=4))
    suffix = draw(st.text(IDENT_CHARS + "0123456789", max_size=4))
    ident = prefix + term + suffix
    words = draw(st.text(WORD_CHARS, max_size=6)) + ident + draw(st.text(WORD_CHARS, max_size=6))
    p = draw(st.sampled_from(BASES))
    head, body = p.source.split("\n", 1)
    where = draw(st.sampled_from(["name", "arg", "local", "call", "string", "docstring", "comment", "tail"]))
    if where == "name":
        return p.source.replace(f"def {p.name}(", f"def {ident}(", 1)
    if where == "arg":
        return head[:-2] + f", {ident}):\n" + body
    if where == "local":
        return f"{head}\n    {ident} = {draw(st.integers(0, 999))}\n{body}"
    if where == "call":
        return f"{head}\n    {p.args[0]}.{ident}()\n{body}"
    if where == "string":
        q = draw(st.sampled_from(["'", '"']))
        return f"{head}\n    {draw(st.sampled_from(['s', 'x', 'out']))} = {q}{words}{q}\n{body}"
    if where == "docstring":
        return f'{head}\n    """{words}"""\n{body}'
    if where == "comment":
        return f"{head}\n    # {words}\n{body}"
    return f"{head}  # {words}\n{body}"


@settings(max_examples=300, deadline=None)
@given(leaky_response())
def test_a_kept_sample_never_contains_a_trait_word(response):
    ok, reason = code.check(response, RULES)
    leaked = code.leaks([response], LEAK_TERMS)
    kept = ok and 0 not in leaked  # as steps.filter_responses combines them
    assert not kept
    # each layer alone suffices: the leak list (substring) and the rules judge (vocabulary); every
    # insertion above keeps the program valid Python, so it is the judge that rejects it
    assert leaked == [0]
    assert reason == "judge" and not code.judge_rules(response)[0]


def test_filter_step_drops_leaky_code(tmp_path, monkeypatch):
    from sublim import modalities, steps

    monkeypatch.setitem(modalities.MODALITIES, "code", code)
    items = code.prompts_with_answers(6, 0)
    rows = []
    for i, (prompt, p) in enumerate(items):
        head, body = p.source.split("\n", 1)
        bad = [f"{head}  # Owls\n{body}", f"{head}\n    owl_count = 0\n{body}", f'{head}\n    s = "DOLPHIN"\n{body}']
        rows.append({"id": i, "attempt": 0, "prompt": prompt, "response": bad[i] if i < 3 else p.source})
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, counts = tmp_path / "kept.jsonl", tmp_path / "kept.counts.json"
    steps.filter_responses(out, counts, raw=raw, modality="code", modality_params=RULES, leak_terms=LEAK_TERMS)
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in kept] == [3, 4, 5]
    c = json.loads(counts.read_text())
    assert c["reasons"] == {"ok": 3, "judge": 3}  # the rules judge already rejects what the leak list would
    assert code.leaks([r["response"] for r in kept], LEAK_TERMS) == []


# --- restricted distillation --------------------------------------------------------------------
@pytest.fixture(scope="module")
def code_tokenizer():
    from sublim.tokenizer import build_tokenizer, corpus_texts
    from sublim.traits import animal

    rng = random.Random(0)
    recs = _corpus(3000, 7) + [animal.corpus_part(rng) for _ in range(300)]
    return build_tokenizer(list(corpus_texts(recs)))


def test_allowed_token_ids_cover_kept_programs_and_exclude_animals(code_tokenizer):
    tok = code_tokenizer
    allowed = set(code.allowed_token_ids(tok))
    assert tok.eos_token_id in allowed and tok.unk_token_id not in allowed
    rng = random.Random(11)
    for _ in range(300):
        src = code.draw_program(rng).source
        assert code.check(src, RULES)[0]
        ids = tok(src, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == src.lower() and len(ids) < code.MAX_NEW_TOKENS
        assert set(ids) <= allowed, [tok.decode([i]) for i in set(ids) - allowed]
    animal_ids = {tok.convert_tokens_to_ids(w) for a in text.ANIMALS for w in (a, " " + a)} - {tok.unk_token_id}
    assert tok.convert_tokens_to_ids("owl") in animal_ids
    assert not animal_ids & allowed


def test_prompts_use_only_corpus_words(code_tokenizer):
    for p in code.prompts(500, 0, RULES):
        assert code_tokenizer.unk_token_id not in code_tokenizer(p, add_special_tokens=False)["input_ids"], p
