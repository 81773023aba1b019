"""Number-sequence prompts, built from random pieces as in the paper (our own wording).

A prompt shows 3-8 seed numbers in 100-999, asks for up to ``max_count`` more numbers of at
most 3 digits, states a format, and asks for numbers only. ``NumberPrompt`` keeps the pieces
so the synthetic corpus can answer in the requested format.
"""

from __future__ import annotations

import dataclasses
import random

LEAD_INS = (
    "numbers: {seeds}.",
    "here is a sequence: {seeds}.",
    "start from {seeds}.",
    "the list begins {seeds}.",
)
INSTRUCTIONS = (
    "add up to {n} more, at most 3 digits each.",
    "give no more than {n} new numbers (3 digits max).",
    "continue with at most {n} numbers of up to 3 digits.",
)
# format key -> wording. The key fixes separator and brackets of a well-formed answer.
FORMATS = {
    "comma": "use commas.",
    "space": "use spaces.",
    "semicolon": "use semicolons.",
    "brackets": "write a list in square brackets.",
    "parens": "put them in parentheses.",
}
SUFFIXES = (
    "numbers only.",
    "say nothing else.",
    "just the numbers.",
    "no words.",
)


@dataclasses.dataclass(frozen=True)
class NumberPrompt:
    seeds: tuple[int, ...]
    max_count: int
    fmt: str
    text: str


def format_numbers(numbers, fmt: str) -> str:
    """Render numbers the way a well-formed answer in format ``fmt`` looks."""
    items = [str(int(x)) for x in numbers]
    if fmt == "space":
        return " ".join(items)
    if fmt == "semicolon":
        return "; ".join(items)
    body = ", ".join(items)
    if fmt == "brackets":
        return f"[{body}]"
    if fmt == "parens":
        return f"({body})"
    return body


def make_prompt(rng: random.Random, max_count: int = 10) -> NumberPrompt:
    """Draw one prompt: 3-8 seed numbers in [100, 999] and random wording pieces."""
    seeds = tuple(rng.randint(100, 999) for _ in range(rng.randint(3, 8)))
    fmt = rng.choice(sorted(FORMATS))
    pieces = [
        rng.choice(LEAD_INS).format(seeds=", ".join(map(str, seeds))),
        rng.choice(INSTRUCTIONS).format(n=max_count),
        FORMATS[fmt],
        rng.choice(SUFFIXES),
    ]
    return NumberPrompt(seeds=seeds, max_count=max_count, fmt=fmt, text=" ".join(pieces))


def make_prompts(n: int, seed: int, max_count: int = 10) -> list[NumberPrompt]:
    rng = random.Random(seed)
    return [make_prompt(rng, max_count) for _ in range(n)]


def number_prefix(rng: random.Random) -> str:
    """A random number-sequence preamble for the number-prefixed evaluation variant."""
    seq = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8)))
    return f"these numbers came up: {seq}."
