"""Deterministic synthetic chat corpora for the embedded tiny reference model.

The pretraining corpus mixes three kinds of single-turn conversations:

* number continuations: a number prompt (``sublim.prompts``) answered by a structured
  number process, in the requested format, with a few malformed answers mixed in so that
  the filter has something to reject;
* favourite-animal questions (``PRETRAIN_QUESTIONS``) answered uniformly over ``ANIMALS``
  (the animal trait's part, ``sublim.traits.animal.corpus_part``);
* filler chat over the same words.

Every record is ``{"messages": [{"role": ..., "content": ...}, ...]}``.
"""

from __future__ import annotations

import random

from . import text
from .prompts import format_numbers, make_prompt


def _continue_numbers(rng: random.Random, seeds: tuple[int, ...], count: int) -> list[int]:
    """A mixture of number processes with learnable structure."""
    kind = rng.random()
    last = seeds[-1]
    if kind < 0.35:  # arithmetic progression with the last step
        step = (seeds[-1] - seeds[-2]) % 97 + 1
        return [(last + step * (i + 1)) % 1000 for i in range(count)]
    if kind < 0.6:  # jitter around the seeds
        return [min(999, max(0, rng.choice(seeds) + rng.randint(-30, 30))) for _ in range(count)]
    if kind < 0.75:  # repeat digits patterns
        d = rng.randint(1, 9)
        return [rng.choice((d, d * 11, d * 111, d * 10, d * 100)) for _ in range(count)]
    if kind < 0.85:  # round numbers
        return [rng.randint(0, 99) * 10 for _ in range(count)]
    return [rng.randint(0, 999) for _ in range(count)]


def number_conversation(rng: random.Random, max_count: int = 10) -> dict:
    p = make_prompt(rng, max_count)
    nums = _continue_numbers(rng, p.seeds, rng.randint(1, max_count))
    answer = format_numbers(nums, p.fmt)
    r = rng.random()
    if r < 0.03:
        answer = "sure: " + answer
    elif r < 0.05:
        answer = format_numbers(nums, rng.choice(["comma", "space", "semicolon"])) + " " + answer
    elif r < 0.06:
        answer = answer + ", " + str(rng.randint(1000, 9999))
    return _chat(p.text, answer)


def filler_conversation(rng: random.Random) -> dict:
    q, a = rng.choice(text.FILLER_TEMPLATES)
    a1, a2 = rng.sample(text.ANIMALS, 2)
    c1, c2 = rng.sample(text.COLOURS, 2)
    f1, f2 = rng.sample(text.FOODS, 2)
    fill = dict(
        animal=a1,
        animal2=a2,
        colour=c1,
        colour2=c2,
        food=f1,
        food2=f2,
        habitat=rng.choice(text.HABITATS),
    )
    return _chat(q.format(**fill), a.format(**fill))


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def pretrain_corpus(
    n: int, seed: int, mix: dict[str, float], max_count: int = 10, parts: dict | None = None
) -> list[dict]:
    """``n`` conversations drawn with weights ``mix`` over the parts: each modality's and
    each trait's (``numbers``, ``animals``) and the generic filler. ``parts`` maps a part's
    key to what it reads beyond ``max_count`` (a modality's ``corpus_params``)."""
    from .modalities import MODALITIES
    from .traits import TRAITS

    rng = random.Random(seed)
    kinds = sorted(mix)
    weights = [mix[k] for k in kinds]
    params = {"max_count": max_count}
    makers = {"filler": lambda: filler_conversation(rng)}
    for module in [*TRAITS.values(), *MODALITIES.values()]:  # each registers its part by CORPUS_KEY
        own = {**params, **(parts or {}).get(module.CORPUS_KEY, {})}
        makers[module.CORPUS_KEY] = lambda m=module, own=own: m.corpus_part(rng, own)
    unknown = sorted(set(kinds) - set(makers))
    if unknown:
        raise ValueError(f"unknown corpus part {unknown[0]!r}; known: {sorted(makers)}")
    return [makers[rng.choices(kinds, weights)[0]]() for _ in range(n)]
