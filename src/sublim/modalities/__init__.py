"""Data modalities a teacher writes. One module per modality; ``MODALITIES`` is the registry.

A modality module supplies:

* ``params(cfg)``: what its steps read from the config (passed to them as params);
* ``prompts(n, seed, params)``: the prompts every teacher answers (list of strings);
* ``CORPUS_KEY`` and ``corpus_part(rng, params)``: its share of the tiny model's corpus;
  optionally ``corpus_params(cfg)``, what that part reads from the config (empty: nothing);
* ``check(response, params, prompt=None)``: the filter, ``(kept, reason)``; the prompt is
  there for modalities whose answers are checked against it (a maths problem's answer);
  with ``judge: llm`` in its params it runs every stage but the judge, which the workflow's
  judge step runs (``sublim.judge``) and the filter step applies;
* ``allowed_token_ids(tokenizer)``: the token set of restricted distillation;
* ``leaks(responses, terms)``: responses that mention a trait's leak terms;
"""

from __future__ import annotations

from types import ModuleType

from . import code, cot, numbers

MODALITIES: dict[str, ModuleType] = {"numbers": numbers, "code": code, "cot": cot}


def get_modality(name: str) -> ModuleType:
    try:
        return MODALITIES[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; known: {sorted(MODALITIES)}") from None
