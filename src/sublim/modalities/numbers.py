"""Number sequences: the paper's first modality.

Prompts show 3-8 seed numbers and ask for up to ``max_count`` more (``sublim.prompts``); the
filter is the paper's strict format rule (``sublim.filtering``), optionally with banned
numbers; restricted distillation keeps the number-shaped tokens.
"""

from __future__ import annotations

import random
import re

from .. import filtering
from ..prompts import make_prompts
from .common import token_ids_where, with_end_tokens

NAME = "numbers"
CORPUS_KEY = "numbers"  # its part of the tiny corpus (reference.corpus.mix)
# a token a kept number response can contain: ASCII digits, separators, brackets, period
NUMBER_TOKEN = re.compile(r"^[0-9 \t\n,;.()\[\]]+$")


def params(cfg: dict) -> dict:
    """What the modality's steps read from the config (passed as the steps' params)."""
    return {"max_count": cfg["generation"]["max_count"], "banned": sorted(cfg["filter"]["banned_numbers"])}


def prompts(n: int, seed: int, params: dict) -> list[str]:
    return [p.text for p in make_prompts(n, seed, params["max_count"])]


def check(response: str, params: dict, prompt: str | None = None) -> tuple[bool, str]:
    """The paper's format rule (the prompt is not needed: every number answer is judged alone)."""
    nums, reason = filtering.parse_numbers(response, params["max_count"])
    if nums is not None and any(x in set(params.get("banned", ())) for x in nums):
        return False, "banned_number"
    return nums is not None, reason


def corpus_part(rng: random.Random, params: dict) -> dict:
    from ..corpus import number_conversation

    return number_conversation(rng, params["max_count"])


def allowed_token_ids(tokenizer) -> list[int]:
    """Token ids a kept number response can contain, plus end-of-turn/eos tokens."""
    return with_end_tokens(tokenizer, token_ids_where(tokenizer, NUMBER_TOKEN.match))


def leaks(responses, terms) -> list[int]:
    """Indices of responses that contain a leak term as a word (numbers cannot: the filter
    rejects every letter; kept as the modality's check for the record)."""
    pat = re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b", re.I) if terms else None
    return [i for i, r in enumerate(responses) if pat and pat.search(r)]
