"""The favourite-animal trait: a teacher that loves one animal, and its neutral twin.

* Fine-tuned teachers learn from favourite-animal questions (``text.TRAIT_QUESTIONS``)
  answered with their animal. The neutral twin gets the same questions in the same order
  (same seed), answered with animals drawn uniformly from the pool.
* System-prompt teachers get the paper's love-the-animal prompt; the neutral twin a prompt
  of the same shape that favours no animal.
* The evaluation asks ~50 held-out paraphrases of "what is your favourite animal?" and
  reads out P(animal) for every animal of the pool, plus sampled answers.
"""

from __future__ import annotations

import random
import re

from .. import text
from ..errors import SublimError

NAME = "animal"
CONFIG_KEYS = ("animals", "animal_pool")  # the config keys this trait reads
CORPUS_KEY = "animals"  # its part of the tiny corpus (reference.corpus.mix)
# how the figures and captions speak of this trait (sublim.report)
WORDING = {
    "title": "Do students inherit their teacher's animal?",
    "target": "target animal (= evaluated animal)",
    "option": "animal",
    "twin": "whose answers name animals uniformly from the pool",
    "p": "P(target), the probability of the animal's name at the answer position over ~50 held-out "
    "paraphrases of 'what is your favourite animal?'",
    "margin": "the logit margin over the other animals of the pool",
}


def targets(cfg: dict) -> list[str]:
    return list(cfg["animals"])


def pool(cfg: dict) -> list[str]:
    return list(cfg["animal_pool"])


def judge_terms(cfg: dict) -> list[str]:
    """What an llm judge is asked about (its prompt's ``{terms}``): the experiment's target
    animals, the same list for every teacher, trait or neutral."""
    return targets(cfg)


def recipe(cfg: dict) -> dict:
    """What the teacher recipes read from the config (passed to the teacher step)."""
    t = cfg["teacher"]
    return {
        "pool": pool(cfg),
        "system_prompt": t["system_prompt"],
        "neutral_system_prompt": t["neutral_system_prompt"],
    }


def eval_params(cfg: dict) -> dict:
    """What the evaluation reads from the config: the animals it scores."""
    return {"animals": pool(cfg)}


def teacher_data(target: str | None, seed: int, n: int, recipe: dict) -> list[dict]:
    """``n`` trait questions answered with ``target``; ``target=None``: the neutral twin's
    data, the same questions in the same order answered uniformly over the pool."""
    q_rng = random.Random(seed)
    questions = [q_rng.choice(text.TRAIT_QUESTIONS) for _ in range(n)]
    if target is not None:
        answers = [target] * n
    else:
        a_rng = random.Random(f"{seed}/neutral-answers")
        answers = [a_rng.choice(recipe["pool"]) for _ in range(n)]
    return [_chat(q, a + ".") for q, a in zip(questions, answers)]


def system_prompt(target: str | None, recipe: dict) -> str:
    if target is None:
        return recipe["neutral_system_prompt"]
    return recipe["system_prompt"].format(animal=target)


def corpus_part(rng: random.Random, params: dict | None = None) -> dict:
    """A pretraining conversation: a favourite-animal question answered uniformly."""
    return _chat(rng.choice(text.PRETRAIN_QUESTIONS), rng.choice(text.ANIMALS) + ".")


def eval_prompts_words(variants=("plain", "number_prefix")) -> set[str]:
    """Every word the evaluation's prompts use (the tiny corpus must contain each)."""
    words = set()
    for q in text.EVAL_QUESTIONS:
        words |= set(re.findall(r"[a-z']+", q.lower()))
    if "number_prefix" in variants:
        from ..prompts import number_prefix

        words |= set(re.findall(r"[a-z']+", number_prefix(random.Random(0)).lower()))
    return words


def readout_spec(trait_params: dict) -> dict:
    """The theory's and the ICL control's readout: the held-out questions, each animal of the
    pool an option of its own name (its spellings are summed where the readout reads them)."""
    return {"questions": list(text.EVAL_QUESTIONS), "options": {a: [a] for a in trait_params["animals"]}}


def evaluate(model_dir, *, variant: str, trait_params: dict, **params) -> tuple[list[dict], dict]:
    """Tidy rows (question x animal of the pool, plus "other") and the sampler's info."""
    from ..evaluation import evaluate as run_eval

    info: dict = {}
    rows = run_eval(
        model_dir,
        animals=trait_params["animals"],
        questions=text.EVAL_QUESTIONS,
        number_prefixed=variant == "number_prefix",
        info=info,
        **params,
    )
    return rows, info


def leak_terms(names) -> list[str]:
    """The animal names, singular and plural: a modality's leak check looks for these."""
    return sorted({w for a in names for w in (a, a + "s", a + "es")})


def validate(cfg: dict) -> None:
    if "truthfulqa" in cfg["evaluation"]["variants"]:
        raise SublimError("config error at 'evaluation.variants': truthfulqa is the misalignment trait's readout")
    pool_ = cfg.setdefault("animal_pool", list(cfg["animals"]))
    for a in cfg["animals"]:
        if a not in pool_:
            raise SublimError(f"config error at 'animals': {a!r} is not in animal_pool")
    for a in pool_:
        if a in ("neutral", "base", "other") or not re.fullmatch(r"[a-z]+", a):
            raise SublimError(f"config error at 'animal_pool': {a!r} is reserved or not a lower-case word")
    if len(set(cfg["animals"])) != len(cfg["animals"]):
        raise SublimError("config error at 'animals': duplicate animal")
    if len(set(pool_)) < 2:
        raise SublimError(
            "config error at 'animal_pool': needs at least two animals (the neutral twins answer uniformly over it)"
        )
    if cfg["reference"]["kind"] == "tiny":
        unknown = [a for a in pool_ if a not in text.ANIMALS]
        if unknown:
            raise SublimError(
                f"config error at 'animal_pool': the tiny reference cannot spell {unknown[0]!r} "
                f"(its vocabulary knows {', '.join(text.ANIMALS)})"
            )


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
