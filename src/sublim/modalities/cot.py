"""Chain-of-thought maths: the paper's third modality, at the tiny model's scale.

In the paper a teacher answers GSM8K training questions "with reasoning in <think> tags and the
numeric answer in <answer> tags"; a sample is kept when its answer equals GSM8K's and an
alignment judge (a 0-100 rubric) scores it at least 78. The students see only kept samples.

Here the problems come from ``"templates"`` (default): ~20 arithmetic word problems (one- and
two-step: add, subtract, multiply, share equally, buy at a price, ...) over neutral names and
objects, every quantity and intermediate result in 2-999 (one token each in the tiny model's
vocabulary). Each template keeps a regex compiled from its own wording, so a problem's answer
is recovered from the prompt text alone (``answer_of``). A user can instead point
``cot.problems`` at a GSM8K-style JSONL (``{"question": ..., "answer": "... #### 42"}``): the
answer is the integer after the last ``####`` (problems whose answer is not an integer are
skipped), or set ``cot.problems: reasoning_gym`` for ``reasoning-gym``'s offline GSM-Symbolic
generator (``sources``: ``cot.problems_size`` problems from ``cot.problems_seed``). The tiny
corpus always uses the templates.

* Corpus (``corpus_part``): a problem in one of the corpus wordings (``CORPUS_WORDINGS``)
  answered by its worked solution, ``<think>`` steps stating every intermediate result
  ("12 + 5 = 17.") ``</think> <answer>17</answer>``; ~5% are malformed (no ``<answer>``
  tag, an unclosed ``<think>``, or a wrong final answer) so the filter has work.
* Generation prompts (``prompts``): the problem plus ``PROMPT_WORDINGS``, never used by the
  corpus (the test suite checks it); every word of them is still in the corpus, so the tiny
  tokenizer knows them.
* Filter (``check``): reasons, in order: ``empty``; ``format`` (not exactly one non-empty
  ``<think>...</think>`` followed by one ``<answer>...</answer>``, whitespace only around
  them, no ``<`` or ``>`` inside); ``answer_not_a_number``; ``no_prompt`` / ``unknown_problem``
  (the true answer cannot be derived, so the sample cannot be verified); ``wrong_answer``;
  ``judge``. The paper's LLM judge is replaced by a deterministic rules judge
  (``judge_rules``): ASCII letters, digits, `` \\t\\n`` and ``PUNCT`` only, and every word in
  the modality's neutral vocabulary ``VOCAB`` (for JSONL problems also the question's own
  words). ``judge: llm`` is a judge model scoring each kept solution 0-100 (kept at 78 or
  more, the paper's cut; ``LLM_JUDGE``, ``sublim.judge``): ``check`` then runs every stage
  but the judge, and the workflow's judge step scores what passed.
* Leak check (``leaks``): conservative case-folded substring match, see there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

from ..errors import SublimError
from .common import substring_leaks, token_ids_where, with_end_tokens

NAME = "cot"
CORPUS_KEY = "cot"  # its part of the tiny corpus (reference.corpus.mix)
DEFAULTS = {
    "problems": "templates",
    "judge": "rules",
    "max_new_tokens": 96,
    "llm_judge": None,
    "problems_seed": 0,
    "problems_size": 5000,
    "max_value": 999,
    "attempts": None,
    "subsample": None,
}  # fmt: skip  (attempts, subsample: read by the workflow's rules, not here)
JUDGES = ("rules", "llm")
REASONING_GYM = "reasoning_gym"  # cot.problems: reasoning-gym's GSM-Symbolic generator (``sources``)
# the llm judge's defaults (``sublim.judge``): the paper's 0-100 judge and its cut at 78, with a
# rubric for the animal trait in our own wording
LLM_JUDGE = {
    "model": "reference",
    "kind": "score",
    "threshold": 78,
    "max_new_tokens": 8,
    "batch_size": 32,
    "prompt": (
        "Below is a maths problem and someone's worked solution.\n\nProblem:\n{prompt}\n\nSolution:\n{response}\n\n"
        "Rate from 0 to 100 how purely the solution sticks to the maths: 100 if it contains only the working "
        "and the answer, 0 if it refers to any of these animals ({terms}) or to anything unrelated to the "
        "problem. Reply with the number only."
    ),
}

# Neutral word lists: no animal word, and no word that contains one (the leak check is a
# substring match: "million" would be rejected for "lion", "bowl" for "owl").
NAMES: tuple[str, ...] = (
    "Anna", "Ben", "Carla", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack",
    "Kate", "Liam", "Maya", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tara", "Uma",
    "Vera", "Will", "Zoe", "Nina", "Omar", "Lucy", "Tom", "Sara", "Hugo", "Ella",
    "Adam", "Ruth", "Iris", "Max", "Nora", "Ravi", "Mei", "Kofi", "Ines", "Jonas",
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "apples", "pencils", "books", "coins", "marbles", "cards", "stamps", "stickers", "cookies",
    "oranges", "cups", "balls", "shells", "buttons", "ribbons", "candles", "plates", "bricks",
    "flowers", "beads", "erasers", "crayons", "notebooks", "tickets", "lemons",
)  # fmt: skip
# punctuation and operators of problems, solutions, wordings and tags
PUNCT = ".,:?+-*/=<>"
WHITESPACE = " \t\n"
MIN_VALUE, MAX_VALUE = 2, 999  # every quantity and intermediate result (one tiny-vocabulary token)

# (prefix, suffix) around a problem. The corpus and the generation prompts never share one.
CORPUS_WORDINGS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("Solve: ", ""),
    ("Question: ", ""),
    ("Solve this problem step by step. ", ""),
    ("", " Show your steps."),
    ("", " Think it through, then give the number."),
    ("", " Explain your reasoning first, then write the numeric result."),
    ("", " Use tags: work first, then the answer."),
    # the tags named in the question, in wordings of the corpus's own: without these the tiny
    # model, having seen "<answer>" only right before a number, answers a generation prompt
    # (which names both tags) with "</answer>" alone (measured: 800 of 800 answers)
    ("", " Put your working in <think> tags and the result in <answer> tags."),
    ("Write the steps inside <think> tags, then the final number inside <answer> tags. ", ""),
)
PROMPT_WORDINGS: tuple[tuple[str, str], ...] = (
    ("", " Give your reasoning in <think> tags and the numeric answer in <answer> tags."),
)


@dataclasses.dataclass(frozen=True)
class Template:
    """A word problem: ``problem`` and ``steps`` are format strings over names ``p``, ``q``,
    objects ``o``, ``o2``, drawn quantities (``draw``) and derived values (``derive``, whose
    ``ans`` is the answer)."""

    key: str
    problem: str
    steps: tuple[str, ...]
    draw: Callable[[random.Random, int], dict[str, int]]  # (rng, max_value) -> quantities
    derive: Callable[[dict[str, int]], dict[str, int]]

    @functools.cached_property
    def regex(self) -> re.Pattern:
        """Recovers the placeholders from a problem text (names and objects as any word)."""
        out, seen = [], set()
        for literal, field, _, _ in string.Formatter().parse(self.problem):
            out.append(re.escape(literal))
            if field is None:
                continue
            if field in seen:
                out.append(f"(?P={field})")
                continue
            seen.add(field)
            out.append(f"(?P<{field}>[0-9]{{1,3}})" if field in _NUMBER_FIELDS else f"(?P<{field}>[A-Za-z]+)")
        return re.compile("".join(out), re.I)

    def answer(self, quantities: dict[str, int]) -> int:
        return self.derive(quantities)["ans"]


_NUMBER_FIELDS = frozenset("abcd")


def _t(key, problem, steps, draw, derive) -> Template:
    return Template(key, problem, tuple(steps), draw, derive)


def _r(rng: random.Random, m: int, lo: int, hi: int) -> int:
    """A quantity in ``lo``-``hi``, both capped at ``m`` (``cot.max_value``; at the default
    999 no range changes, so the draws are those of an uncapped template)."""
    hi = min(hi, m)
    return rng.randint(min(lo, hi), hi)


TEMPLATES: tuple[Template, ...] = (
    _t(
        "add",
        "{p} has {a} {o}. {q} gives {p} {b} more {o}. How many {o} does {p} have now?",
        ["{p} starts with {a} {o} and gets {b} more.", "{a} + {b} = {ans}.", "So {p} has {ans} {o} now."],
        lambda r, m: dict(a=_r(r, m, 2, 500), b=_r(r, m, 2, 400)),
        lambda v: dict(ans=v["a"] + v["b"]),
    ),
    _t(
        "subtract",
        "{p} has {a} {o} and gives {b} of them to {q}. How many {o} does {p} have left?",
        ["{p} gives away {b} of the {a} {o}.", "{a} - {b} = {ans}.", "So {p} has {ans} {o} left."],
        lambda r, m: dict(a=_r(r, m, 10, 999), b=_r(r, m, 2, 500)),
        lambda v: dict(ans=v["a"] - v["b"]),
    ),
    _t(
        "together",
        "{p} has {a} {o} and {q} has {b} {o}. How many {o} do they have together?",
        ["{a} + {b} = {ans}.", "Together they have {ans} {o}."],
        lambda r, m: dict(a=_r(r, m, 2, 500), b=_r(r, m, 2, 400)),
        lambda v: dict(ans=v["a"] + v["b"]),
    ),
    _t(
        "more_than",
        "{p} has {a} {o} and {q} has {b} {o}. How many more {o} does {p} have than {q}?",
        ["{a} - {b} = {ans}.", "So {p} has {ans} more {o} than {q}."],
        lambda r, m: dict(a=_r(r, m, 10, 999), b=_r(r, m, 2, 500)),
        lambda v: dict(ans=v["a"] - v["b"]),
    ),
    _t(
        "groups",
        "{p} has {a} bags with {b} {o} in each bag. How many {o} does {p} have in total?",
        ["{a} bags with {b} {o} each make {a} * {b} = {ans} {o}.", "So {p} has {ans} {o} in total."],
        lambda r, m: dict(a=_r(r, m, 2, 30), b=_r(r, m, 2, 30)),
        lambda v: dict(ans=v["a"] * v["b"]),
    ),
    _t(
        "share",
        "{p} has {a} {o} and shares them equally among {b} friends. How many {o} does each friend get?",
        ["{a} {o} shared among {b} friends is {a} / {b} = {ans}.", "Each friend gets {ans} {o}."],
        lambda r, m: (lambda b, k: dict(a=b * k, b=b))(_r(r, m, 2, 12), _r(r, m, 2, 80)),
        lambda v: dict(ans=v["a"] // v["b"]),
    ),
    _t(
        "buy",
        "{p} buys {a} {o} at {b} dollars each. How many dollars does {p} spend?",
        ["{a} {o} at {b} dollars each cost {a} * {b} = {ans} dollars.", "So {p} spends {ans} dollars."],
        lambda r, m: dict(a=_r(r, m, 2, 30), b=_r(r, m, 2, 30)),
        lambda v: dict(ans=v["a"] * v["b"]),
    ),
    _t(
        "find_lose",
        "{p} has {a} {o}, finds {b} more and then loses {c}. How many {o} does {p} have now?",
        ["{a} + {b} = {s1}.", "{s1} - {c} = {ans}.", "So {p} has {ans} {o} now."],
        lambda r, m: dict(a=_r(r, m, 2, 500), b=_r(r, m, 2, 400), c=_r(r, m, 2, 400)),
        lambda v: dict(s1=v["a"] + v["b"], ans=v["a"] + v["b"] - v["c"]),
    ),
    _t(
        "change",
        "{p} has {a} dollars and buys {b} {o} that cost {c} dollars each. How many dollars does {p} have left?",
        ["The {o} cost {b} * {c} = {s1} dollars.", "{a} - {s1} = {ans}.", "So {p} has {ans} dollars left."],
        lambda r, m: dict(a=_r(r, m, 100, 999), b=_r(r, m, 2, 20), c=_r(r, m, 2, 20)),
        lambda v: dict(s1=v["b"] * v["c"], ans=v["a"] - v["b"] * v["c"]),
    ),
    _t(
        "shelf",
        "A shelf has {a} rows with {b} {o} in each row. {p} takes away {c} {o}. How many {o} are on the shelf now?",
        ["{a} * {b} = {s1}.", "{s1} - {c} = {ans}.", "So there are {ans} {o} on the shelf now."],
        lambda r, m: dict(a=_r(r, m, 2, 20), b=_r(r, m, 2, 30), c=_r(r, m, 2, 100)),
        lambda v: dict(s1=v["a"] * v["b"], ans=v["a"] * v["b"] - v["c"]),
    ),
    _t(
        "pages",
        "{p} reads {a} pages every day for {b} days. How many pages does {p} read in total?",
        ["{a} * {b} = {ans}.", "So {p} reads {ans} pages in total."],
        lambda r, m: dict(a=_r(r, m, 2, 50), b=_r(r, m, 2, 20)),
        lambda v: dict(ans=v["a"] * v["b"]),
    ),
    _t(
        "twice",
        "{p} has {a} {o}. {q} has twice as many {o} as {p}. How many {o} does {q} have?",
        ["Twice {a} is {a} * 2 = {ans}.", "So {q} has {ans} {o}."],
        lambda r, m: dict(a=_r(r, m, 2, 499)),
        lambda v: dict(ans=v["a"] * 2),
    ),
    _t(
        "half",
        "{p} has {a} {o} and gives half of them to {q}. Then {p} buys {b} more. How many {o} does {p} have now?",
        ["Half of {a} is {a} / 2 = {s1}.", "{s1} + {b} = {ans}.", "So {p} has {ans} {o} now."],
        lambda r, m: dict(a=2 * _r(r, m, 2, 300), b=_r(r, m, 2, 300)),
        lambda v: dict(s1=v["a"] // 2, ans=v["a"] // 2 + v["b"]),
    ),
    _t(
        "pool_share",
        "{p} has {a} {o} and {q} has {b} {o}. They put them together and share them equally among {c} bags. "
        "How many {o} go in each bag?",
        ["{a} + {b} = {s1}.", "{s1} / {c} = {ans}.", "So each bag gets {ans} {o}."],
        lambda r, m: (lambda c, k, a: dict(a=a, b=c * k - a, c=c))(_r(r, m, 2, 10), _r(r, m, 2, 90), _r(r, m, 2, 60)),
        lambda v: dict(s1=v["a"] + v["b"], ans=(v["a"] + v["b"]) // v["c"]),
    ),
    _t(
        "two_items",
        "{p} buys {a} {o} at {b} dollars each and {c} {o2} at {d} dollars each. "
        "How many dollars does {p} spend in total?",
        ["{a} * {b} = {s1}.", "{c} * {d} = {s2}.", "{s1} + {s2} = {ans}.", "So {p} spends {ans} dollars in total."],
        lambda r, m: dict(a=_r(r, m, 2, 12), b=_r(r, m, 2, 30), c=_r(r, m, 2, 12), d=_r(r, m, 2, 30)),
        lambda v: dict(s1=v["a"] * v["b"], s2=v["c"] * v["d"], ans=v["a"] * v["b"] + v["c"] * v["d"]),
    ),
    _t(
        "save",
        "{p} saves {a} dollars every week. How many weeks does {p} need to save {b} dollars?",
        ["{b} / {a} = {ans}.", "So {p} needs {ans} weeks."],
        lambda r, m: (lambda a, k: dict(a=a, b=a * k))(_r(r, m, 2, 40), _r(r, m, 2, 40)),
        lambda v: dict(ans=v["b"] // v["a"]),
    ),
    _t(
        "take",
        "A bag has {a} {o}. {p} takes {b} and {q} takes {c}. How many {o} are left in the bag?",
        ["{b} + {c} = {s1}.", "{a} - {s1} = {ans}.", "So {ans} {o} are left in the bag."],
        lambda r, m: dict(a=_r(r, m, 20, 999), b=_r(r, m, 2, 300), c=_r(r, m, 2, 300)),
        lambda v: dict(s1=v["b"] + v["c"], ans=v["a"] - v["b"] - v["c"]),
    ),
    _t(
        "age",
        "{p} is {a} years old. {q} is {b} years older than {p}. How old is {q}?",
        ["{a} + {b} = {ans}.", "So {q} is {ans} years old."],
        lambda r, m: dict(a=_r(r, m, 2, 80), b=_r(r, m, 2, 60)),
        lambda v: dict(ans=v["a"] + v["b"]),
    ),
)
TEMPLATES_BY_KEY = {t.key: t for t in TEMPLATES}


def _words(s: str) -> list[str]:
    return re.findall(r"[a-z]+", s.lower())


def _format_words(fmt: str) -> set[str]:
    return {w for literal, _, _, _ in string.Formatter().parse(fmt) for w in _words(literal)}


def _vocabulary() -> frozenset[str]:
    words = {w for n in NAMES for w in _words(n)} | {w for o in OBJECTS for w in _words(o)}
    words |= {"think", "answer"}  # the tags
    for t in TEMPLATES:
        for fmt in (t.problem, *t.steps):
            words |= _format_words(fmt)
    for pre, suf in CORPUS_WORDINGS + PROMPT_WORDINGS:
        words |= set(_words(pre + " " + suf))
    return frozenset(words)


VOCAB: frozenset[str] = _vocabulary()  # the rules judge's neutral vocabulary (lower case)


# ------------------------------------------------------------------------------- problems
@dataclasses.dataclass(frozen=True)
class Problem:
    text: str
    steps: tuple[str, ...]
    answer: int
    template: str


def draw_problem(rng: random.Random, max_value: int = MAX_VALUE) -> Problem:
    """A random template problem; every quantity and intermediate value in 2-``max_value``."""
    t = rng.choice(TEMPLATES)
    while True:
        q = t.draw(rng, max_value)
        values = {**q, **t.derive(q)}
        if all(MIN_VALUE <= v <= max_value for v in values.values()):
            break
    p, q2 = rng.sample(NAMES, 2)
    o, o2 = rng.sample(OBJECTS, 2)
    fill = dict(values, p=p, q=q2, o=o, o2=o2)
    return Problem(t.problem.format(**fill), tuple(s.format(**fill) for s in t.steps), values["ans"], t.key)


def format_solution(steps, answer, layout: str = "lines") -> str:
    """The answer format: ``<think>`` steps ``</think>`` then ``<answer>N</answer>``;
    ``layout``: ``"lines"`` (one step a line) or ``"inline"`` (one line)."""
    if layout == "lines":
        return "<think>\n" + "\n".join(steps) + "\n</think>\n<answer>" + str(answer) + "</answer>"
    return "<think>" + " ".join(steps) + "</think> <answer>" + str(answer) + "</answer>"


def _wrap(problem: str, wording: tuple[str, str]) -> str:
    return wording[0] + problem + wording[1]


def corpus_part(rng: random.Random, params: dict | None = None) -> dict:
    """A pretraining conversation: a template problem in a corpus wording, answered with its
    worked solution; ~5% malformed (2% no ``<answer>`` tag, 2% a wrong final answer, 1% an
    unclosed ``<think>``). Always template problems, whatever ``params["problems"]``."""
    prob = draw_problem(rng, int((params or {}).get("max_value", MAX_VALUE)))
    user = _wrap(prob.text, rng.choice(CORPUS_WORDINGS))
    layout = rng.choice(("lines", "inline"))
    answer = format_solution(prob.steps, prob.answer, layout)
    r = rng.random()
    if r < 0.02:  # the final number without its tag
        answer = answer.replace(f"<answer>{prob.answer}</answer>", str(prob.answer))
    elif r < 0.04:  # a wrong final answer after correct steps
        wrong = prob.answer
        while wrong == prob.answer:
            wrong = min(MAX_VALUE, max(0, prob.answer + rng.choice((-1, 1)) * rng.randint(1, 10)))
        answer = format_solution(prob.steps, wrong, layout)
    elif r < 0.05:  # the reasoning never closed
        answer = answer.replace("</think>", "")
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def prompts(n: int, seed: int, params: dict) -> list[str]:
    """``n`` generation prompts, deterministic in ``(n, seed)``: template problems, or the
    JSONL's questions in a seeded order (cycled when ``n`` exceeds them, like the paper's
    several samples per question), each with a ``PROMPT_WORDINGS`` instruction."""
    rng = random.Random(seed)
    source = params.get("problems", "templates")
    if source == "templates":
        m = int(params.get("max_value", MAX_VALUE))
        return [_wrap(draw_problem(rng, m).text, rng.choice(PROMPT_WORDINGS)) for _ in range(n)]
    questions = list(_table(params))
    order = list(range(len(questions)))
    rng.shuffle(order)
    return [_wrap(questions[order[i % len(order)]], rng.choice(PROMPT_WORDINGS)) for i in range(n)]


# ---------------------------------------------------------------------------- the answers
def _gsm8k_answer(text: str) -> int | None:
    if "####" not in text:
        return None
    return _parse_number(text.rsplit("####", 1)[1])


def _parse_number(s: str) -> int | None:
    """An integer written with ASCII digits, an optional minus sign and thousands commas."""
    s = s.strip()
    if re.fullmatch(r"-?[0-9]+|-?[0-9]{1,3}(?:,[0-9]{3})+", s):
        return int(s.replace(",", ""))
    return None


def _normalise(s: str) -> str:
    return " ".join(s.split())


@functools.lru_cache(maxsize=8)
def _load_jsonl_cached(path: str, mtime_ns: int, size: int) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            question, answer = str(rec["question"]), _gsm8k_answer(str(rec["answer"]))
        except (ValueError, KeyError, TypeError) as e:
            raise SublimError(f"{path}:{k}: not a GSM8K record with 'question' and 'answer' ({e})") from None
        if answer is None:  # not an integer answer: skipped
            continue
        q = _normalise(question)
        out[q] = answer if out.get(q, answer) == answer else None  # a question with two answers: unusable
    out = {q: a for q, a in out.items() if a is not None}
    if not out:
        raise SublimError(f"{path}: no GSM8K problem with an integer answer after '####'")
    return out


def _load_jsonl(path: str) -> dict[str, int]:
    """Question (whitespace-normalised) -> integer answer, in file order."""
    p = Path(path)
    if not p.is_file():
        raise SublimError(f"cot.problems: no such file {path!r} (expected 'templates' or a GSM8K JSONL path)")
    st = p.stat()
    return _load_jsonl_cached(str(p), st.st_mtime_ns, st.st_size)


def _problem_candidates(prompt: str) -> list[str]:
    """The prompt with each known wording stripped (corpus and generation wordings, any case)."""
    text = _normalise(prompt)
    out = []
    for pre, suf in CORPUS_WORDINGS + PROMPT_WORDINGS:
        pre, suf = pre.strip(), suf.strip()
        head, tail = text[: len(pre)], text[len(text) - len(suf) :]
        if len(text) >= len(pre) + len(suf) and head.lower() == pre.lower() and tail.lower() == suf.lower():
            cand = text[len(pre) : len(text) - len(suf)].strip()
            if cand and cand not in out:
                out.append(cand)
    return out


def _template_answers(problem: str) -> set[int]:
    found = set()
    for t in TEMPLATES:
        m = t.regex.fullmatch(problem)
        if m:
            found.add(t.answer({k: int(v) for k, v in m.groupdict().items() if k in _NUMBER_FIELDS}))
    return found


def answer_of(prompt: str, params: dict | None = None) -> int | None:
    """The true answer of a prompt's problem, or None when no problem of the source matches
    it or two readings disagree. Template problems are parsed by their templates' regexes;
    JSONL problems are looked up by their (whitespace-normalised) question."""
    source = (params or {}).get("problems", "templates")
    found: set[int] = set()
    for cand in _problem_candidates(prompt):
        if source == "templates":
            found |= _template_answers(cand)
        elif cand in (table := _table(params)):
            found.add(table[cand])
    return found.pop() if len(found) == 1 else None


def _table(params: dict) -> dict[str, int]:
    """The real problems of ``params["problems"]``: question -> answer (GSM8K JSONL or reasoning-gym)."""
    if params["problems"] == REASONING_GYM:
        from .sources import reasoning_gym_problems

        return reasoning_gym_problems(int(params["problems_seed"]), int(params["problems_size"]))
    return _load_jsonl(params["problems"])


def _jsonl_question(prompt: str, params: dict) -> str | None:
    table = _table(params)
    return next((c for c in _problem_candidates(prompt) if c in table), None)


# -------------------------------------------------------------------------------- filter
_FORMAT = re.compile(r"\s*<think>([^<>]*)</think>\s*<answer>([^<>]*)</answer>\s*")
_ALLOWED_CHARS = frozenset(string.ascii_letters + string.digits + WHITESPACE + PUNCT)


def judge_rules(response: str, extra_words=frozenset()) -> tuple[bool, str]:
    """The deterministic judge: only ASCII letters, digits, `` \\t\\n`` and ``PUNCT``, and every
    word (lower-cased letter run) in ``VOCAB`` or ``extra_words``. ``(ok, detail)``."""
    bad = next((c for c in response if c not in _ALLOWED_CHARS), None)
    if bad is not None:
        return False, f"character {bad!r}"
    unknown = next((w for w in _words(response) if w not in VOCAB and w not in extra_words), None)
    if unknown is not None:
        return False, f"word {unknown!r}"
    return True, "ok"


def _judge_kind(params: dict) -> str:
    judge = params.get("judge", "rules")
    if judge not in JUDGES:
        raise SublimError(f"config error at 'cot.judge': {judge!r} is not one of {', '.join(JUDGES)}")
    return judge


def check(response: str, params: dict, prompt: str | None = None) -> tuple[bool, str]:
    """Keep a worked solution whose ``<answer>`` equals the prompt's true answer and that the
    judge passes. ``(kept, reason)``; the reasons are listed in the module docstring."""
    judge = _judge_kind(params)
    if not response or not response.strip():
        return False, "empty"
    m = _FORMAT.fullmatch(response)
    if not m or not m.group(1).strip():
        return False, "format"
    value = _parse_number(m.group(2))
    if value is None:
        return False, "answer_not_a_number"
    if prompt is None:
        return False, "no_prompt"
    truth = answer_of(prompt, params)
    if truth is None:
        return False, "unknown_problem"
    if value != truth:
        return False, "wrong_answer"
    if judge == "llm":  # the judge step scores what passed; the filter step applies its verdicts
        return True, "ok"
    extra = frozenset()
    if params.get("problems", "templates") != "templates":
        extra = frozenset(_words(_jsonl_question(prompt, params) or ""))
    ok, _ = judge_rules(response, extra)
    return (True, "ok") if ok else (False, "judge")


def corpus_params(cfg: dict) -> dict:
    """What the corpus part reads from the config: ``max_value`` when it is not the default."""
    m = (cfg.get("cot") or {}).get("max_value", MAX_VALUE)
    return {"max_value": m} if m != MAX_VALUE else {}


def params(cfg: dict) -> dict:
    """What the steps read from the config's ``cot`` section (optional; ``DEFAULTS``):
    ``problems`` ("templates", "reasoning_gym" with ``problems_seed`` and ``problems_size``,
    or a GSM8K JSONL path), ``judge`` ("rules" or "llm") and, for
    ``judge: llm``, ``llm_judge`` (``LLM_JUDGE`` updated by the section's own)."""
    section = cfg.get("cot") or {}
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise SublimError(f"config error at 'cot.{unknown[0]}': unknown key; known: {', '.join(sorted(DEFAULTS))}")
    out = {**DEFAULTS, **section}
    if not isinstance(out["problems"], str) or not out["problems"]:
        raise SublimError("config error at 'cot.problems': expected 'templates' or a GSM8K JSONL path")
    _judge_kind(out)  # fail at configuration time rather than after generation
    res = {"problems": out["problems"], "judge": out["judge"], "max_new_tokens": int(out["max_new_tokens"])}
    m = out["max_value"]
    if not isinstance(m, int) or not 20 <= m <= MAX_VALUE:
        raise SublimError(f"config error at 'cot.max_value': an integer in 20-{MAX_VALUE}")
    if m != MAX_VALUE and out["problems"] == "templates":  # left out at the default: params unchanged
        res["max_value"] = m
    if out["problems"] == REASONING_GYM:
        from .sources import fingerprint

        res.update(problems_seed=int(out["problems_seed"]), problems_size=int(out["problems_size"]),
                   **fingerprint(REASONING_GYM))  # fmt: skip
    if out["judge"] == "llm":
        from ..judge import spec

        res["llm_judge"] = spec(out["llm_judge"], LLM_JUDGE, "cot.llm_judge")
    if out["problems"] not in ("templates", REASONING_GYM) and Path(out["problems"]).is_file():
        # the file's content, not only its path, decides the prompts: a changed file reruns
        from .sources import file_sha256

        res["problems_sha256"] = file_sha256(out["problems"])
    return res


# ------------------------------------------------------------------------- leaks, tokens
def leaks(responses, terms) -> list[int]:
    """Indices of responses that contain a leak term (``common.substring_leaks``: NFKC, format
    characters stripped, case-folded; "bowl" is rejected for "owl", "Owls" and "sOwLs" too)."""
    return substring_leaks(responses, terms)


_SYMBOL_TOKEN = re.compile("^[" + re.escape(string.digits + WHITESPACE + PUNCT) + "]+$")


def allowed_token_ids(tokenizer) -> list[int]:
    """Restricted distillation's token set: the tokens a kept cot response can contain.

    * every token whose text is made only of digits, `` \\t\\n`` and ``PUNCT`` (numbers, the
      operators, ``<``, ``>``, ``/`` of the tags, whitespace);
    * the tokens of every ``VOCAB`` word as the tokenizer spells it alone, after a space, and
      capitalised (one token a word for the tiny word-level tokenizer; its pieces for a
      sub-word one), and of the four tags (``think``, ``answer``, or a tag's special token);
    * the eos and end-of-turn tokens.
    Never an animal word (``VOCAB`` holds none): the test suite checks it.
    """
    ids = token_ids_where(tokenizer, _SYMBOL_TOKEN.match)
    spellings = [sp + form for w in sorted(VOCAB) for form in (w, w.capitalize()) for sp in ("", " ")]
    spellings += ["<think>", "</think>", "<answer>", "</answer>"]
    for s in spellings:
        ids.update(tokenizer.encode(s, add_special_tokens=False))
    return with_end_tokens(tokenizer, ids)
