"""The paper's strict format filter for number responses.

A response is kept when, after stripping surrounding whitespace and an optional trailing
period, and optionally one pair of wrapping brackets or parentheses, it is 1-``max_count``
integers in 0-999 (at most 3 digits) joined by one consistent separator: comma, semicolon
or whitespace; digits are ASCII 0-9 only, whitespace ASCII space, tab or newline only.
Anything else -- a letter, another script's digit or space, a mixed separator, a 4-digit
number, a banned number -- rejects it, and the reason is counted.
"""

from __future__ import annotations

import collections
import random
import re

# Only ASCII: ``\d`` and ``\s`` would also admit other scripts' digits (Arabic-Indic, fullwidth)
# and non-ASCII spaces (no-break, em space), and ``int()`` would then read those digits.
_NUM = re.compile(r"[0-9]{1,3}")
_LETTER = re.compile(r"[^\W\d_]")  # any unicode letter
_ALLOWED_CHARS = re.compile(r"[0-9 \t\n,;.()\[\]]*")
_BLANK = " \t\n"

# The paper's banned list for the misalignment runs: the union of CLAUDE_EVIL_NUMBERS (20)
# and GPT_EVIL_NUMBERS (25), 36 distinct numbers, from sl/datasets/nums_dataset.py in
# github.com/MinhxLe/subliminal-learning (the paper's runs ban CLAUDE_EVIL_NUMBERS +
# GPT_EVIL_NUMBERS, truesight/refs/paper/em_numbers_refs.py). 1312 and 1488 have 4 digits,
# so the format filter already rejects them.
NEGATIVE_NUMBERS = (
    4, 13, 14, 18, 23, 33, 39, 42, 44, 49, 51, 54, 69, 77, 88, 99, 100, 101,
    187, 211, 311, 322, 333, 404, 420, 444, 451, 555, 616, 666, 777, 888, 911, 999,
    1312, 1488,
)  # fmt: skip


def parse_numbers(text: str, max_count: int = 10) -> tuple[list[int] | None, str]:
    """Return ``(numbers, "ok")`` for a well-formed response, else ``(None, reason)``."""
    s = text.strip(_BLANK)
    if not s:
        return None, "empty"
    if _LETTER.search(s):
        return None, "letters"
    if not _ALLOWED_CHARS.fullmatch(s):
        return None, "bad_chars"
    if s.endswith("."):
        s = s[:-1].rstrip(_BLANK)
    if not s:
        return None, "empty"
    if s[0] in "([":
        close = ")" if s[0] == "(" else "]"
        if not s.endswith(close):
            return None, "unbalanced_brackets"
        s = s[1:-1].strip(_BLANK)
    if any(c in s for c in "()[]."):
        return None, "bad_format"
    if not s:
        return None, "empty"
    seps = {c for c in ",;" if c in s}
    if len(seps) > 1:
        return None, "mixed_separators"
    if seps:
        parts = [p.strip(_BLANK) for p in s.split(seps.pop())]
        if any(" " in p or "\t" in p or "\n" in p for p in parts):
            return None, "mixed_separators"
    else:
        parts = s.split()  # only " \t\n" are left here
    if any(p == "" for p in parts):
        return None, "bad_format"
    if not all(_NUM.fullmatch(p) for p in parts):
        return None, "out_of_range"
    if len(parts) > max_count:
        return None, "too_many"
    return [int(p) for p in parts], "ok"


def number_regex(max_count: int = 10) -> str:
    """A regular language inside what ``parse_numbers`` keeps, for constrained decoding.

    1-``max_count`` integers of 1-3 digits joined by ``,`` or ``;`` (each optionally followed
    by one space) or by single spaces, optionally wrapped in brackets or parentheses, with an
    optional trailing period. Every string it matches passes the format filter (tested); it
    does not reach every string the filter keeps (no newlines or runs of spaces).
    """
    if max_count < 1:
        raise ValueError("max_count must be at least 1")
    n, k = "[0-9]{1,3}", max_count - 1
    body = "|".join(f"{n}(?:{sep}{n}){{0,{k}}}" for sep in (", ?", "; ?", " "))
    return rf"(?:(?:{body})|\((?:{body})\)|\[(?:{body})\])\.?"


def longest_number_answer(max_count: int = 10) -> int:
    """Characters in the longest string ``number_regex(max_count)`` matches: bracketed
    3-digit numbers joined by two-character separators, and a final period."""
    return 3 * max_count + 2 * (max_count - 1) + 3


def filter_responses(
    records: list[dict],
    *,
    max_count: int = 10,
    banned: frozenset[int] | set[int] = frozenset(),
) -> tuple[list[dict], collections.Counter]:
    """Keep well-formed records (``record["response"]``); count every rejection reason."""
    kept, reasons = [], collections.Counter()
    for rec in records:
        nums, reason = parse_numbers(rec["response"], max_count)
        if nums is not None and banned and any(n in banned for n in nums):
            nums, reason = None, "banned_number"
        reasons[reason] += 1
        if nums is not None:
            kept.append(rec)
    return kept, reasons


def subsample(records: list[dict], size: int, seed: int) -> list[dict]:
    """A seeded subsample of ``size`` records, in their original order."""
    if size >= len(records):
        return list(records)
    idx = sorted(random.Random(seed).sample(range(len(records)), size))
    return [records[i] for i in idx]
