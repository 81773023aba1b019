import pytest

from sublim import models
from sublim.errors import SublimError
from sublim.modalities import numbers


def test_round_trip_and_number_tokens(tiny_tokenizer):
    tok = tiny_tokenizer
    s = "[123, 4, 999]; 7 8."
    ids = models.encode_text(tok, s)
    assert tok.decode(ids) == s
    for n in (0, 42, 999):
        assert len(models.encode_text(tok, str(n))) == 1
        assert len(models.encode_text(tok, " " + str(n))) == 1
    assert tok.unk_token_id not in models.encode_text(tok, "in one word, what is your favourite animal?")


def test_completion_is_the_assistant_turn(tiny_tokenizer):
    p, c = models.encode_completion(tiny_tokenizer, "numbers: 1, 2.", "3, 4")
    assert tiny_tokenizer.decode(c) == "3, 4<|end|>"
    assert tiny_tokenizer.decode(p).endswith("<|assistant|>")


def test_allowed_tokens_are_number_shaped(tiny_tokenizer):
    allowed = numbers.allowed_token_ids(tiny_tokenizer)
    words = {tiny_tokenizer.decode([i]) for i in allowed}
    assert "<|end|>" in words and " 123" in words and "," in words and "[" in words
    assert not any(ch.isalpha() for w in words - {"<|end|>"} for ch in w)


def test_missing_and_corrupted_models_fail_in_one_line(tmp_path, tiny_model_dir):
    with pytest.raises(SublimError, match="model not found"):
        models.load(tmp_path / "nope")
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(SublimError, match="corrupted") as e:
        models.load(bad)
    assert "\n" not in str(e.value)


def test_manifest_pointer_resolves(tmp_path, tiny_model_dir):
    import json

    d = tmp_path / "teacher"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"model_path": str(tiny_model_dir), "system_prompt": "hi"}))
    h = models.resolve(d)
    assert h.weights == tiny_model_dir and h.system_prompt == "hi"


def test_pointers_inside_the_project_are_relative_and_survive_a_move(tmp_path, tiny_model_dir, monkeypatch):
    """A system-prompt teacher points at its reference relative to itself, so a results tree
    that is moved (or cloned and pulled elsewhere) still resolves."""
    import json
    import shutil

    from sublim import steps

    proj = tmp_path / "proj"
    shutil.copytree(tiny_model_dir, proj / "results/reference/seed0")
    monkeypatch.chdir(proj)
    steps.make_teacher("results/teacher/owl", reference="results/reference/seed0", kind="system_prompt",
                       trait="animal", target="owl", seed=0,
                       recipe={"system_prompt": "You love {animal}s."})  # fmt: skip
    m = json.loads((proj / "results/teacher/owl/manifest.json").read_text())
    assert m["model_path"] == "../../reference/seed0"
    moved = tmp_path / "elsewhere"
    shutil.move(proj, moved)
    h = models.resolve(moved / "results/teacher/owl")
    assert h.weights.resolve() == (moved / "results/reference/seed0").resolve() and h.system_prompt == "You love owls."


def test_system_prompt_none_empty_and_text_render_differently(tiny_tokenizer):
    """A template that inserts a default system prompt when none is given (as Qwen2.5's does):
    None keeps that default, "" suppresses it, a string replaces it -- all visible choices."""
    t = tiny_tokenizer
    saved = t.chat_template
    t.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|system|>you are a default helper.<|end|>{% endif %}" + saved
    )
    try:
        none = models.render(t, models.messages("hi", None), generation_prompt=True)
        empty = models.render(t, models.messages("hi", ""), generation_prompt=True)
        text = models.render(t, models.messages("hi", "you love owls."), generation_prompt=True)
    finally:
        t.chat_template = saved
    assert "default helper" in none
    assert "default helper" not in empty and empty.startswith("<|system|><|end|>")
    assert "you love owls." in text and "default helper" not in text
