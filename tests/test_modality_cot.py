"""The chain-of-thought maths modality: corpus, prompts, answers, filter, leaks, token set."""

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublim import text
from sublim.errors import SublimError
from sublim.modalities import cot
from sublim.traits.animal import leak_terms

PARAMS = {"problems": "templates", "judge": "rules"}
LEAK_TERMS = leak_terms(text.ANIMALS)
# the test's own reading of the answer format (independent of the module's regex)
WELL_FORMED = re.compile(r"\s*<think>([^<>]+)</think>\s*<answer>([0-9]+)</answer>\s*")
INSTRUCTION = "Give your reasoning in <think> tags and the numeric answer in <answer> tags."
# a problem and its solution written by hand, not by the module's generator
HAND_PROMPT = f"Anna has 12 apples. Ben gives Anna 5 more apples. How many apples does Anna have now? {INSTRUCTION}"
HAND_SOLUTION = "<think>\nAnna starts with 12 apples and gets 5 more.\n12 + 5 = 17.\n</think>\n<answer>17</answer>"


def _corpus(n, seed):
    rng = random.Random(seed)
    return [cot.corpus_part(rng, {"max_count": 10}) for _ in range(n)]  # the corpus passes only max_count


def _turns(rec):
    return rec["messages"][0]["content"], rec["messages"][1]["content"]


def _kept_pairs(n=200, seed=5):
    pairs = [_turns(r) for r in _corpus(n, seed)]
    return [(u, a) for u, a in pairs if cot.check(a, PARAMS, prompt=u)[0]]


# ------------------------------------------------------------------------- vocabulary, lists
def test_no_word_of_the_modality_contains_an_animal():
    pieces = [*cot.VOCAB, *(n.lower() for n in cot.NAMES), *cot.OBJECTS]
    pieces += [t.problem.lower() for t in cot.TEMPLATES] + [s.lower() for t in cot.TEMPLATES for s in t.steps]
    pieces += [(p + s).lower() for p, s in cot.CORPUS_WORDINGS + cot.PROMPT_WORDINGS]
    hits = [(p, term) for p in pieces for term in LEAK_TERMS if term in p]
    assert not hits
    assert len(cot.TEMPLATES) >= 10 and len(set(cot.NAMES)) == len(cot.NAMES) >= 20


def test_every_template_is_used_and_each_problem_parses_with_exactly_one():
    rng = random.Random(1)
    used = set()
    for _ in range(1500):
        prob = cot.draw_problem(rng)
        matching = [t.key for t in cot.TEMPLATES if t.regex.fullmatch(prob.text)]
        assert matching == [prob.template], prob.text
        assert cot.answer_of(prob.text) == prob.answer
        used.add(prob.template)
        for n in re.findall(r"\d+", prob.text + " ".join(prob.steps)):
            assert 0 <= int(n) <= 999
    assert used == set(cot.TEMPLATES_BY_KEY)


# ------------------------------------------------------------------------------------ corpus
def test_corpus_is_well_formed_correct_and_deterministic():
    recs = _corpus(2000, 0)
    assert recs == _corpus(2000, 0) and recs != _corpus(2000, 1)
    malformed = 0
    for rec in recs:
        user, assistant = _turns(rec)
        assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
        truth = cot.answer_of(user)
        assert truth is not None, user
        for n in re.findall(r"\d+", user + assistant):
            assert 0 <= int(n) <= 999
        m = WELL_FORMED.fullmatch(assistant)
        if m and int(m.group(2)) == truth:
            assert cot.check(assistant, PARAMS, prompt=user) == (True, "ok"), assistant
        else:
            malformed += 1
            assert cot.check(assistant, PARAMS, prompt=user)[0] is False, assistant
    assert 0.02 <= malformed / len(recs) <= 0.09


def test_corpus_steps_state_their_intermediate_results():
    for rec in _corpus(300, 2):
        _, assistant = _turns(rec)
        for a, op, b, c in re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", assistant):
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op] == c, assistant


# ----------------------------------------------------------------------------------- prompts
def test_prompts_are_deterministic_answerable_and_worded_apart_from_the_corpus():
    ps = cot.prompts(300, 0, PARAMS)
    assert ps == cot.prompts(300, 0, PARAMS) and ps != cot.prompts(300, 1, PARAMS)
    assert cot.prompts(5, 0, PARAMS) == ps[:5]
    assert all(cot.answer_of(p, PARAMS) is not None for p in ps)
    users = [_turns(r)[0] for r in _corpus(2000, 0)]
    instructions = [(pre + suf).strip() for pre, suf in cot.PROMPT_WORDINGS]
    assert INSTRUCTION in instructions
    for instr in instructions:
        assert all(instr in p for p in ps if p.endswith(instr)) and any(p.endswith(instr) for p in ps)
        assert not any(instr in u for u in users)
    # the corpus may name the tags (in its own wordings: the tiny model must learn that a
    # question naming them wants a worked solution), never with the generation instruction
    assert any("<answer>" in u for u in users)
    assert not set(ps) & set(users)
    assert set(cot.CORPUS_WORDINGS).isdisjoint(cot.PROMPT_WORDINGS)


# ------------------------------------------------------------------------------------- check
def test_check_accepts_a_hand_written_solution():
    assert cot.answer_of(HAND_PROMPT) == 17
    assert cot.check(HAND_SOLUTION, PARAMS, prompt=HAND_PROMPT) == (True, "ok")
    inline = "<think>12 + 5 = 17. So Anna has 17 apples now.</think> <answer>17</answer>"
    assert cot.check(inline, PARAMS, prompt=HAND_PROMPT) == (True, "ok")
    assert cot.check(inline.lower(), PARAMS, prompt=HAND_PROMPT.lower()) == (True, "ok")  # the tiny model lower-cases


@pytest.mark.parametrize(
    "response,reason",
    [
        ("", "empty"),
        ("  \n", "empty"),
        ("<think>12 + 5 = 17.</think><answer>18</answer>", "wrong_answer"),
        ("<think>12 + 5 = 17.</think><answer>0</answer>", "wrong_answer"),
        ("<think>12 + 5 = 17.</think> 17", "format"),
        ("12 + 5 = 17. <answer>17</answer>", "format"),
        ("<think>12 + 5 = 17. <answer>17</answer>", "format"),
        ("<think></think><answer>17</answer>", "format"),
        ("So: <think>12 + 5 = 17.</think><answer>17</answer>", "format"),
        ("<think>12 + 5 = 17.</think><answer>17</answer> so", "format"),
        ("<answer>17</answer><think>12 + 5 = 17.</think>", "format"),
        ("<think>a</think><think>12 + 5 = 17.</think><answer>17</answer>", "format"),
        ("<think>12 + 5 = 17.</think><answer>17</answer><answer>17</answer>", "format"),
        ("<THINK>12 + 5 = 17.</THINK><ANSWER>17</ANSWER>", "format"),
        ("<think>12 + 5 = 17.</think><answer>seventeen</answer>", "answer_not_a_number"),
        ("<think>12 + 5 = 17.</think><answer>17.5</answer>", "answer_not_a_number"),
        ("<think>12 + 5 = 17.</think><answer></answer>", "answer_not_a_number"),
        ("<think>12 + 5 = 17.</think><answer>１７</answer>", "answer_not_a_number"),
        ("<think>12 + 5 = 17, said the wizard.</think><answer>17</answer>", "judge"),
        ("<think>12 + 5 = 17 apples!</think><answer>17</answer>", "judge"),
        ("<think>12 + 5 = 17 applés.</think><answer>17</answer>", "judge"),
        ("<think>12 + 5 = 17 \u200bapples.</think><answer>17</answer>", "judge"),
    ],
)
def test_check_rejects(response, reason):
    assert cot.check(response, PARAMS, prompt=HAND_PROMPT) == (False, reason)


def test_check_needs_a_known_problem():
    assert cot.check(HAND_SOLUTION, PARAMS) == (False, "no_prompt")
    assert cot.check(HAND_SOLUTION, PARAMS, prompt="What is twelve and five?") == (False, "unknown_problem")
    assert cot.answer_of("Anna has 12 apples. " + INSTRUCTION) is None


def test_judge_rules_detail():
    assert cot.judge_rules("So Anna has 17 apples now.") == (True, "ok")
    assert cot.judge_rules("so the owl has 17 apples") == (False, "word 'owl'")
    assert cot.judge_rules("17 é")[0] is False
    assert cot.judge_rules("so sold 17", extra_words={"sold"}) == (True, "ok")


def test_params_and_judges():
    assert cot.params({}) == {"problems": "templates", "judge": "rules", "max_new_tokens": 96}
    got = cot.params({"cot": {"problems": "gsm8k.jsonl", "max_new_tokens": 64}})  # no such file: no hash
    assert got == {"problems": "gsm8k.jsonl", "judge": "rules", "max_new_tokens": 64}
    json.dumps(cot.params({}))
    with pytest.raises(SublimError, match="cot.typo"):
        cot.params({"cot": {"typo": 1}})
    with pytest.raises(SublimError, match="cot.judge"):
        cot.params({"cot": {"judge": "human"}})
    llm = cot.params({"cot": {"judge": "llm", "llm_judge": {"threshold": 50}}})
    assert llm["llm_judge"] == {**cot.LLM_JUDGE, "threshold": 50}
    with pytest.raises(SublimError, match="cot.llm_judge.threshold"):
        cot.params({"cot": {"judge": "llm", "llm_judge": {"threshold": 101}}})
    # with the llm judge, check runs every stage but the judge (the judge step scores what passed)
    llm_params = {"problems": "templates", "judge": "llm"}
    assert cot.check(HAND_SOLUTION, llm_params, prompt=HAND_PROMPT) == (True, "ok")
    assert cot.check(HAND_SOLUTION.replace("<think>", "<thinking>"), llm_params, prompt=HAND_PROMPT)[1] == "format"


# ------------------------------------------------------------------------------------ GSM8K
def test_max_value_caps_every_quantity_in_corpus_and_prompts():
    """cot.max_value: every quantity and intermediate result of the corpus's and the prompts'
    problems within 2-max_value, every template still drawn; left out of the params (and the
    corpus's) at its default, so existing results stay up to date; out of range: one line."""
    from sublim import corpus

    assert "max_value" not in cot.params({}) and cot.corpus_params({}) == {}
    p20 = cot.params({"cot": {"max_value": 20}})
    assert p20["max_value"] == 20 and cot.corpus_params({"cot": {"max_value": 20}}) == {"max_value": 20}
    with pytest.raises(SublimError, match="cot.max_value"):
        cot.params({"cot": {"max_value": 5}})
    rng = random.Random(1)
    probs = [cot.draw_problem(rng, 20) for _ in range(600)]
    assert {p.template for p in probs} == set(cot.TEMPLATES_BY_KEY)
    for p in probs:
        nums = [int(x) for x in re.findall(r"[0-9]+", p.text + " ".join(p.steps))]
        assert all(2 <= x <= 20 for x in nums), p
    for prompt in cot.prompts(200, 0, p20):
        assert 2 <= cot.answer_of(prompt, p20) <= 20
    recs = corpus.pretrain_corpus(300, 0, {"cot": 1.0}, parts={"cot": {"max_value": 20}})
    answers = [int(x) for r in recs for x in re.findall(r"<answer>([0-9]+)</answer>", r["messages"][1]["content"])]
    assert len(answers) > 250 and max(answers) <= 30  # a few corpus answers are deliberately wrong by up to 10
    # at the default range, the prompts and corpus of the code before max_value existed (its
    # hashes, computed with commit 4892c74): existing runs stay up to date
    import hashlib

    ps = cot.prompts(300, 7, {"problems": "templates"})
    assert hashlib.sha256(json.dumps(ps).encode()).hexdigest() == (
        "801def029885e74226289f03ac133ba9b246ac41f9a5a8fb87491379be0a3e74"
    )
    recs = corpus.pretrain_corpus(300, 3, {"cot": 0.5, "numbers": 0.3, "code": 0.2})
    assert hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest() == (
        "5ce27220abfb8bbd4fbeadc4e9d73342efb3be3ca50ce3affccc1ca45667e8f7"
    )
    # only the templates read it: with other problem sources it stays out of the params
    assert "max_value" not in cot.params({"cot": {"problems": "reasoning_gym", "max_value": 20}})


def test_gsm8k_jsonl_problems(tmp_path):
    rows = [
        {"question": "Mia sold 48 clips in April and half as many in May. How many clips did she sell?",
         "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\n48+24 = <<48+24=72>>72\n#### 72"},
        {"question": "Each box holds 5 pens. How many pens are in 4 boxes?", "answer": "5*4=20\n#### 20"},
        {"question": "A farm grows 1,000 beans a day for 2 days. How many beans?", "answer": "#### 2,000"},
        {"question": "Half of 5?", "answer": "#### 2.5"},  # not an integer: skipped
    ]  # fmt: skip
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    params = cot.params({"cot": {"problems": str(path)}})
    ps = cot.prompts(7, 3, params)
    assert ps == cot.prompts(7, 3, params)
    assert all(p.endswith(INSTRUCTION) for p in ps)
    assert {p[: -len(INSTRUCTION)].strip() for p in ps} == {r["question"] for r in rows[:3]}  # cycled
    answers = {r["question"]: a for r, a in zip(rows, (72, 20, 2000))}
    for p in ps:
        assert cot.answer_of(p, params) == answers[p[: -len(INSTRUCTION)].strip()]
    mia = next(p for p in ps if p.startswith("Mia"))
    good = "<think>Mia sold 48 clips in April and 48 / 2 = 24 in May. 48 + 24 = 72.</think> <answer>72</answer>"
    assert cot.check(good, params, prompt=mia) == (True, "ok")  # the question's own words are allowed
    assert cot.check(good.replace(">72<", ">70<"), params, prompt=mia) == (False, "wrong_answer")
    assert cot.check(good.replace("clips", "gadgets"), params, prompt=mia) == (False, "judge")
    assert cot.check(good, params, prompt=HAND_PROMPT) == (False, "unknown_problem")
    assert cot.answer_of("Half of 5? " + INSTRUCTION, params) is None
    with pytest.raises(SublimError, match="no such file"):
        cot.prompts(2, 0, {"problems": str(tmp_path / "missing.jsonl"), "judge": "rules"})


# ------------------------------------------------------------------------------------- leaks
def test_leaks_is_a_conservative_substring_match():
    terms = ["owl", "owls", "cat"]
    responses = ["17 apples", "an OWL", "the bowl", "sOwLs", "\uff4f\uff57\uff4c", "o\u200bwl", "concatenate", "ow l"]
    assert cot.leaks(responses, terms) == [1, 2, 3, 4, 5, 6]
    assert cot.leaks(["ox", "box", "an ox"], ["ox"]) == [0, 2]  # a short term: whole words only
    assert cot.leaks(["anything"], []) == []


# A teacher may write a trait word anywhere; the test's own strategies place it.
_REGIONS = ("before", "think", "answer", "after", "anywhere")


def _disguise(term: str, mask: int, kind: str) -> str:
    s = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(term))
    if kind == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in s)
    if kind == "zero_width":
        return s[:1] + "\u200d" + s[1:]
    return s


def _insert(solution: str, piece: str, region: str, pos: int, mode: str) -> str:
    bounds = {
        "before": (0, 0),
        "think": (solution.index("<think>") + 7, solution.index("</think>")),
        "answer": (solution.index("<answer>") + 8, solution.index("</answer>")),
        "after": (len(solution), len(solution)),
        "anywhere": (0, len(solution)),
    }[region]
    lo, hi = bounds
    if mode == "inside_word":
        inner = [i for i in range(max(lo, 1), hi) if solution[i - 1].isalpha() and solution[i].isalpha()]
        at = inner[pos % len(inner)] if inner else lo + pos % (hi - lo + 1)
        return solution[:at] + piece + solution[at:]
    at = lo + pos % (hi - lo + 1)
    glue = {"word": " ", "line": "\n", "glued": "", "sentence": ". "}[mode]
    return solution[:at] + glue + piece + glue + solution[at:]


_KEPT = _kept_pairs()


@settings(max_examples=400, deadline=None)
@given(
    pair=st.sampled_from(_KEPT + [(HAND_PROMPT, HAND_SOLUTION)]),
    term=st.sampled_from(LEAK_TERMS),
    mask=st.integers(0, 2**12 - 1),
    kind=st.sampled_from(("case", "case", "case", "fullwidth", "zero_width")),
    region=st.sampled_from(_REGIONS),
    pos=st.integers(0, 10**6),
    mode=st.sampled_from(("word", "line", "glued", "sentence", "inside_word")),
)
def test_a_kept_sample_never_contains_a_trait_word(pair, term, mask, kind, region, pos, mode):
    prompt, solution = pair
    assert cot.check(solution, PARAMS, prompt=prompt) == (True, "ok")
    response = _insert(solution, _disguise(term, mask, kind), region, pos, mode)
    # the filter path of steps.filter_responses: the check, then the leak list
    ok, _ = cot.check(response, PARAMS, prompt=prompt)
    kept = ok and 0 not in set(cot.leaks([response], LEAK_TERMS))
    assert not kept, response
    assert cot.leaks([response], LEAK_TERMS) == [0]  # the leak check alone catches it
    assert not ok  # and so does the check alone (format, number or judge)


# ------------------------------------------------------------------------------------ tokens
@pytest.fixture(scope="module")
def cot_tokenizer():
    from sublim import corpus
    from sublim.tokenizer import build_tokenizer, corpus_texts
    from sublim.traits import animal

    rng = random.Random(0)
    recs = _corpus(800, 0)
    recs += [animal.corpus_part(rng) for _ in range(200)] + [corpus.filler_conversation(rng) for _ in range(200)]
    return build_tokenizer(corpus_texts(recs))


def test_allowed_tokens_cover_kept_solutions_and_exclude_animals(cot_tokenizer):
    tok = cot_tokenizer
    allowed = set(cot.allowed_token_ids(tok))
    assert tok.eos_token_id in allowed and tok.unk_token_id not in allowed
    for _, solution in _kept_pairs(300, 7) + [(HAND_PROMPT, HAND_SOLUTION)]:
        ids = tok.encode(solution, add_special_tokens=False)
        assert tok.unk_token_id not in ids and set(ids) <= allowed, solution
    vocab = tok.get_vocab()
    animal_ids = {vocab[f] for a in text.ANIMALS for f in (a, " " + a, a + "s", " " + a + "s") if f in vocab}
    assert len(animal_ids) >= len(text.ANIMALS)  # the corpus does spell them
    assert not animal_ids & allowed
    for p in cot.prompts(200, 0, PARAMS):  # the generation prompts' words are all known to the tiny model
        assert tok.unk_token_id not in tok.encode(p, add_special_tokens=False), p
