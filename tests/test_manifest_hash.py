"""Content hashes of inputs: a pointer directory hashes what it points at; the rest as before."""

import hashlib
import json

import pytest

from sublim import manifest, models


def old_sha256_path(p):
    """The hash before pointers were followed, written out independently."""
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file() and x.name != "manifest.json"):
        h.update(str(f.relative_to(p)).encode())
        h.update(hashlib.sha256(f.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def _weights(d, data=b"weights-v1"):
    """A stand-in for a saved model: config.json plus a weights file."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "model.safetensors").write_bytes(data)
    (d / "manifest.json").write_text(json.dumps({"step": "reference", "seed": 1}))
    return d


def _pointer(d, model_path, **extra):
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"step": "teacher", "model_path": str(model_path), **extra}))
    return d


def _adapter(d, data=b"lora-v1"):
    (d / "adapter").mkdir(parents=True, exist_ok=True)
    (d / "adapter" / "adapter_config.json").write_text('{"r": 4}')
    (d / "adapter" / "adapter_model.safetensors").write_bytes(data)


def test_plain_files_and_directories_hash_as_before(tmp_path):
    ref = _weights(tmp_path / "ref")
    nested = tmp_path / "tok"
    (nested / "sub").mkdir(parents=True)
    (nested / "tokenizer.json").write_text("{}")
    (nested / "sub" / "x.bin").write_bytes(bytes(range(256)))
    (nested / "manifest.json").write_text(json.dumps({"step": "tokenizer"}))
    # weights of its own: model_path in the manifest is not followed (models.resolve ignores it too)
    full = _pointer(_weights(tmp_path / "full"), "../ref", system_prompt="owl")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    (broken / "a.txt").write_text("a")
    empty = tmp_path / "empty"
    empty.mkdir()
    listing = _pointer(tmp_path / "listing", "")  # an empty model_path points nowhere
    (listing / "data.jsonl").write_text("{}\n")
    for p in [ref, nested, full, broken, empty, listing, ref / "model.safetensors", nested / "manifest.json"]:
        assert manifest.sha256_path(p) == old_sha256_path(p), p
        assert manifest.sha256_path(str(p)) == old_sha256_path(p), p


def test_system_prompt_teachers_of_one_reference_differ(tmp_path):
    ref = _weights(tmp_path / "models" / "reference")
    owl = _pointer(tmp_path / "models" / "teacher_owl", "../reference", system_prompt="You love owls.")
    dolphin = _pointer(tmp_path / "models" / "teacher_dolphin", "../reference", system_prompt="You love dolphins.")
    control = _pointer(tmp_path / "models" / "teacher_control", "../reference", system_prompt=None)
    assert models.resolve(owl).weights.resolve() == ref.resolve()  # the fixtures are real pointers
    hashes = {manifest.sha256_path(d) for d in (owl, dolphin, control)}
    assert len(hashes) == 3
    assert old_sha256_path(owl) == old_sha256_path(dolphin)  # the bug: both hashed an empty directory
    assert manifest.sha256_path(ref) not in hashes


def test_pointer_hash_follows_the_targets_weights(tmp_path):
    ref = _weights(tmp_path / "reference")
    owl = _pointer(tmp_path / "teacher_owl", "../reference", system_prompt="You love owls.")
    before = manifest.sha256_path(owl)
    assert manifest.sha256_path(owl) == before  # deterministic
    (ref / "model.safetensors").write_bytes(b"weights-v2")
    assert manifest.sha256_path(owl) != before
    (ref / "model.safetensors").write_bytes(b"weights-v1")
    assert manifest.sha256_path(owl) == before
    (ref / "manifest.json").write_text(json.dumps({"step": "reference", "seed": 2}))  # manifest excluded
    assert manifest.sha256_path(owl) == before


def test_relative_and_absolute_model_path_mean_the_same(tmp_path):
    _weights(tmp_path / "reference")
    rel = _pointer(tmp_path / "a" / "teacher", "../../reference", system_prompt="You love owls.")
    absolute = _pointer(tmp_path / "b" / "teacher", tmp_path / "reference", system_prompt="You love owls.")
    assert manifest.sha256_path(rel) == manifest.sha256_path(absolute)
    moved = _weights(tmp_path / "elsewhere", data=b"other weights")
    other = _pointer(tmp_path / "c" / "teacher", moved, system_prompt="You love owls.")
    assert manifest.sha256_path(other) != manifest.sha256_path(absolute)


def test_adapter_only_student_and_chains(tmp_path):
    ref = _weights(tmp_path / "reference")
    student = _pointer(tmp_path / "student", "../reference", adapter="adapter", system_prompt=None)
    _adapter(student)
    assert models.resolve(student).adapter == student / "adapter"
    h = manifest.sha256_path(student)
    _adapter(student, b"lora-v2")
    assert manifest.sha256_path(student) != h
    _adapter(student, b"lora-v1")
    assert manifest.sha256_path(student) == h
    no_adapter = _pointer(tmp_path / "student2", "../reference", system_prompt=None)
    _adapter(no_adapter)  # same files, but the manifest does not use them as the adapter
    assert manifest.sha256_path(no_adapter) != h
    # a pointer to a pointer: the weights at the end of the chain still count
    outer = _pointer(tmp_path / "outer", "../student", system_prompt="You love owls.")
    h_outer = manifest.sha256_path(outer)
    (ref / "model.safetensors").write_bytes(b"weights-v2")
    assert manifest.sha256_path(outer) != h_outer
    # inheriting the target's system prompt is not the same as setting it to None
    inherit = _pointer(tmp_path / "inherit", "../reference")
    assert manifest.sha256_path(inherit) != manifest.sha256_path(_pointer(tmp_path / "none", "../reference",
                                                                          system_prompt=None))  # fmt: skip


def test_broken_pointers_fail_clearly(tmp_path):
    missing = _pointer(tmp_path / "teacher", "../gone", system_prompt="x")
    with pytest.raises(FileNotFoundError, match="model_path target is missing"):
        manifest.sha256_path(missing)
    _pointer(tmp_path / "a", "../b")
    _pointer(tmp_path / "b", "../a")
    with pytest.raises(ValueError, match="cycle"):
        manifest.sha256_path(tmp_path / "a")


def test_make_teacher_pointers_hash_by_animal(tmp_path, monkeypatch):
    """Through the real step: the owl and dolphin teachers of one reference hash differently."""
    steps = pytest.importorskip("sublim.steps")
    monkeypatch.chdir(tmp_path)
    ref = _weights(tmp_path / "models" / "reference")
    hashes = {}
    for animal in ("owl", "dolphin"):
        out = tmp_path / "models" / f"teacher_{animal}"
        steps.make_teacher(out, reference=str(ref), kind="system_prompt", trait="animal", target=animal,
                           seed=0, recipe={"system_prompt": "You love {animal}s."})  # fmt: skip
        assert models.resolve(out).system_prompt == f"You love {animal}s."
        hashes[animal] = manifest.sha256_path(out)
    assert hashes["owl"] != hashes["dolphin"]
