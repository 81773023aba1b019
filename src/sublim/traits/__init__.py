"""Traits a teacher can carry. One module per trait; ``TRAITS`` is the registry.

A trait module supplies:

* ``CONFIG_KEYS``: the top-level config keys it reads (they travel with the design table);
* ``targets(cfg)`` / ``pool(cfg)``: the targets that get teachers, and all the trait scores;
* ``recipe(cfg)``: what its teacher recipes read from the config (passed to the teacher step);
* ``teacher_data(target, seed, n, recipe)``: the fine-tuning recipe of a trait teacher, and with
  ``target=None`` its neutral twin's (same questions in the same order, answers spread over
  the pool);
* ``system_prompt(target, recipe)``: the system-prompt recipe (``None`` target: the neutral one);
* ``CORPUS_KEY`` and ``corpus_part(rng, params)``: its share of the tiny model's pretraining
  corpus (weighted by ``reference.corpus.mix[CORPUS_KEY]``);
* ``eval_params(cfg)`` and ``evaluate(model_dir, variant=, trait_params=, **sampling)``: tidy
  rows of the trait readout;
* ``leak_terms(targets)``: words a modality's leak check must not find in teacher data;
* ``judge_terms(cfg)``: what a modality's llm judge is asked about (its prompt's ``{terms}``);
* ``validate(cfg)``: its config checks (one line naming the key);
* optionally ``modality_params(cfg, modality)``: what it adds to a modality's params for its
  experiments (misalignment: the banned numbers);
* optionally ``eval_questions()`` and ``eval_prompts_words()``: checked against the corpus
  when its part is in the mix (held out, and every word trained).
* optionally ``eval_inputs(trait_params)``: the files or model directories its evaluation
  reads beyond the models scored (misalignment: the judge model), name -> path; they are the
  evaluate rule's inputs and are hashed into its manifest.
* optionally ``readout_spec(trait_params)``: the logit readout that the one-step theorem
  (``theory``) and the in-context control (``icl``) read, ``{"questions": [...], "options":
  {option: [words]}}``: the held-out questions, and per option (every teacher's target is
  one) the answer words whose probabilities it sums; None where the trait's readout is not a
  logit readout (misalignment's judged readout of the presets). A trait without it has no
  theory or ICL rows.
"""

from __future__ import annotations

from types import ModuleType

from . import animal, misalignment

TRAITS: dict[str, ModuleType] = {"animal": animal, "misalignment": misalignment}


def eval_inputs(name: str, trait_params: dict) -> dict[str, str]:
    """What a trait's evaluation reads besides the models it scores (``eval_inputs``)."""
    hook = getattr(get_trait(name), "eval_inputs", None)
    return dict(hook(trait_params)) if hook else {}


def readout_spec(name: str, trait_params: dict) -> dict | None:
    """The trait's logit readout for the theory and ICL (``readout_spec``), or None."""
    hook = getattr(get_trait(name), "readout_spec", None)
    return hook(trait_params) if hook else None


def get_trait(name: str) -> ModuleType:
    try:
        return TRAITS[name]
    except KeyError:
        raise KeyError(f"unknown trait {name!r}; known: {sorted(TRAITS)}") from None
