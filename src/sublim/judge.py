"""The ``llm`` judge stage of the code and chain-of-thought filters: a prompted judge model.

The paper filtered its code data with a judge model asked, at temperature 0, whether a
completion references the animal "however subtly" (answering 0 or 1), and kept a sample only
when the judge's probability of "0" was essentially 1; its chain-of-thought data with a judge
that scored each sample 0-100, keeping scores of at least 78. Both are here, as two kinds:

* ``probability``: the judge model's probability of ``answer`` (one token of its tokenizer)
  at the first position of its reply, softmax at temperature 1 over the whole vocabulary; a
  sample is kept when it is at least ``threshold``. (vLLM reports the top 20 first tokens
  only; an answer outside them counts as probability 0.)
* ``score``: the judge's greedy reply (at most ``max_new_tokens`` tokens) must start with an
  integer 0-100; a sample is kept when it is at least ``threshold``. An unparsable reply
  rejects the sample (counted apart).

The judge's prompt is a template with ``{response}`` (the teacher's answer), ``{prompt}``
(the question it answered) and ``{terms}`` (the trait's judge terms, the same list for every
teacher of an experiment, so treatment and control data are judged alike); literal braces are
doubled. It is sent as the user turn of the judge model's own chat template, with that
model's system prompt. The judge model is ``reference`` (the experiment's untouched
reference model) or a local path to a model directory (``save_pretrained`` weights), served
by the experiment's generation backend (``kvcache`` or ``transformers`` on a CPU, ``vllm``
on a GPU).

The judge scores only what passed every other stage of the filter (format, parse,
correctness, leak check): the generate step retries a prompt until those pass, and the judge
sees each prompt's first such answer. A prompt whose answer the judge rejects is not asked
again (the paper asked each prompt once). The judge's scores are an artifact: one row per
judged answer, in ``results/<trait>/<modality>/judge/<teacher>.jsonl`` with a manifest; the
filter step reads them and applies the threshold (``verdict``), so changing only the
threshold reruns the filter, not the judge model.
"""

from __future__ import annotations

import re
import string

from .errors import SublimError

KINDS = ("probability", "score")
KEYS = ("model", "kind", "prompt", "answer", "threshold", "max_new_tokens", "batch_size")
# what a kind brings when a config switches a modality's judge to it (keys it leaves unset)
KIND_DEFAULTS = {
    "probability": {"answer": "0", "threshold": 0.99, "max_new_tokens": 1},
    "score": {"answer": "0", "threshold": 78, "max_new_tokens": 8},
}
_SCORE = re.compile(r"\s*(\d{1,3})(?!\d)")


def spec(section: dict | None, defaults: dict, where: str) -> dict:
    """The judge's settings: the config's ``<modality>.llm_judge`` over the modality's
    defaults (and, where it switches the kind, that kind's ``KIND_DEFAULTS``), checked; a bad
    value is one line naming its key."""
    section = dict(section or {})
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise SublimError(f"config error at '{where}.{unknown[0]}': unknown key; known: {', '.join(KEYS)}")
    out = {**defaults, **section}
    if out["kind"] != defaults["kind"] and out["kind"] in KIND_DEFAULTS:
        out.update({k: v for k, v in KIND_DEFAULTS[out["kind"]].items() if k not in section})
    if out["kind"] not in KINDS:
        raise SublimError(f"config error at '{where}.kind': {out['kind']!r} is not one of {', '.join(KINDS)}")
    if not isinstance(out["model"], str) or not out["model"]:
        raise SublimError(f"config error at '{where}.model': 'reference' or a local model directory")
    tpl = out["prompt"]
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(tpl) if f is not None}
    except (ValueError, TypeError) as e:
        raise SublimError(f"config error at '{where}.prompt': not a template ({e}); double literal braces") from e
    if "response" not in fields or fields - {"response", "prompt", "terms"}:
        raise SublimError(
            f"config error at '{where}.prompt': the template must use {{response}} and may use only "
            f"{{prompt}} and {{terms}} (found {sorted(fields)}); double literal braces"
        )
    t = out["threshold"]
    if out["kind"] == "probability":
        if not isinstance(t, (int, float)) or not 0 < t <= 1:
            raise SublimError(f"config error at '{where}.threshold': a probability in (0, 1] for kind probability")
        if not isinstance(out.get("answer"), str) or not out["answer"]:
            raise SublimError(f"config error at '{where}.answer': the reply token whose probability is read")
    elif not isinstance(t, (int, float)) or not 0 <= t <= 100:
        raise SublimError(f"config error at '{where}.threshold': a score in [0, 100] for kind score")
    for k in ("max_new_tokens", "batch_size"):
        if not isinstance(out[k], int) or out[k] < 1:
            raise SublimError(f"config error at '{where}.{k}': a positive integer")
    return {k: out[k] for k in KEYS if k in out}


def judge_inference(modality_params: dict) -> dict:
    """The modality's params as the judge step needs them: without the threshold (the filter
    applies it, so changing it does not rerun the judge model) and, for kind probability,
    without max_new_tokens (one forward position is read)."""
    out = dict(modality_params)
    if out.get("llm_judge"):
        spec_ = {k: v for k, v in out["llm_judge"].items() if k != "threshold"}
        if spec_["kind"] == "probability":
            spec_.pop("max_new_tokens", None)
        out["llm_judge"] = spec_
    return out


def verdict(judge_spec: dict, score) -> tuple[bool, str]:
    """``(kept, reason)`` of a judged answer: its score against the threshold."""
    if score is None:
        return False, "judge_unparsable"
    return (True, "ok") if score >= judge_spec["threshold"] else (False, "judge")


def render(template: str, *, response: str, prompt: str, terms: list[str]) -> str:
    return template.format(response=response, prompt=prompt, terms=", ".join(terms))


def parse_score(reply: str) -> int | None:
    """The integer 0-100 a score reply starts with (after whitespace), else None."""
    m = _SCORE.match(reply)
    if not m or int(m.group(1)) > 100:
        return None
    return int(m.group(1))


def answer_token(tok, answer: str, where: str = "llm_judge") -> int:
    ids = tok.encode(answer, add_special_tokens=False)
    if len(ids) != 1:
        raise SublimError(
            f"config error at '{where}.answer': {answer!r} is {len(ids)} tokens for the judge's tokenizer; "
            "the probability readout needs a one-token answer"
        )
    return ids[0]


def judge(rows: list[dict], *, model_dir, judge_spec: dict, terms: list[str], backend: str, threads=None,
          engine=None, where: str = "llm_judge") -> tuple[list[dict], dict]:  # fmt: skip
    """Judge ``rows`` (each with ``id``, ``attempt``, ``prompt``, ``response``): one score a
    row, ``{"id", "attempt", "score"}`` (plus the reply for kind score; an unparsable reply
    scores None), and the backend's stats. ``verdict`` applies the threshold."""
    from transformers import AutoTokenizer

    from . import models
    from .generation import Sampling, generate

    handle = models.resolve(model_dir)
    tok = AutoTokenizer.from_pretrained(handle.weights)
    texts = [
        models.render(
            tok,
            models.messages(
                render(judge_spec["prompt"], response=r["response"], prompt=r["prompt"], terms=terms),
                handle.system_prompt,
            ),  # fmt: skip
            generation_prompt=True,
        )
        for r in rows
    ]
    prob = judge_spec["kind"] == "probability"
    sampling = Sampling(
        temperature=0.0,
        max_new_tokens=1 if prob else judge_spec["max_new_tokens"],
        seed=0,
        batch_size=judge_spec["batch_size"],
        prob_of=answer_token(tok, judge_spec["answer"], where) if prob else None,
    )
    if not rows:
        return [], {"n_prompts": 0}
    replies, stats = generate(backend, model_dir, texts, sampling, threads=threads, engine=engine)
    probs = stats.pop("first_token_probs", None)
    out = []
    for i, (r, reply) in enumerate(zip(rows, replies)):
        v = {"id": r["id"], "attempt": r.get("attempt", 0)}
        if prob:
            v["score"] = float(probs[i])
        else:
            v.update(score=parse_score(reply), reply=reply)
        out.append(v)
    return out, stats
