"""Content hashes of inputs: a pointer directory hashes what it points at; the rest as before."""

import hashlib
import json
import os

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


# ---------------------------------------------------------------- the hash cache of big files
@pytest.fixture
def hash_cache(tmp_path, monkeypatch):
    """A cache directory of its own, files of 1 KiB and more remembered, a count of reads, and
    the cache's clock a minute ahead (a file's ctime cannot be set back by hand: every file
    written here looks a minute old, unless a test puts the clock back)."""
    import time

    cache = tmp_path / "hash-cache"
    monkeypatch.setenv(manifest.CACHE_ENV, str(cache))
    monkeypatch.setattr(manifest, "CACHE_MIN_BYTES", 1024)
    reads = []
    real = manifest._hash_bytes
    monkeypatch.setattr(manifest, "_hash_bytes", lambda path, chunk: reads.append(str(path)) or real(path, chunk))
    clock = {"ahead": 60.0}

    class _Time:
        def __getattr__(self, name):
            return getattr(time, name)

        def time(self):
            return time.time() + clock["ahead"]

    monkeypatch.setattr(manifest, "time", _Time())
    return cache, reads, clock


def _old(path, data: bytes):
    """Write ``data`` and date its mtime a minute back."""
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))
    return path


def test_big_files_are_read_once_then_remembered(tmp_path, hash_cache, monkeypatch):
    cache, reads, _ = hash_cache
    f = _old(tmp_path / "model.safetensors", b"w" * 4096)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert manifest.sha256_file(f) == want
    assert manifest.sha256_file(f) == want
    assert reads == [str(f)]
    assert len(list(cache.glob("*.json"))) == 1
    # through a model directory and a pointer to it, too
    d = _weights(tmp_path / "ref", b"x" * 4096)
    _old(d / "model.safetensors", b"x" * 4096)
    p = _pointer(tmp_path / "teacher", d, system_prompt="You love owls.")
    first = manifest.sha256_path(p)
    assert manifest.sha256_path(p) == first == manifest.sha256_path(p)
    weights = str(d / "model.safetensors")
    assert reads.count(weights) == 1  # read once; the small config.json is hashed each time
    monkeypatch.setenv(manifest.CACHE_ENV, "off")
    assert manifest.sha256_path(p) == first  # what the plain computation gives
    assert reads.count(weights) == 2


def test_a_changed_file_is_hashed_again(tmp_path, hash_cache):
    import time

    _, reads, _ = hash_cache
    f = _old(tmp_path / "w.bin", b"a" * 4096)
    assert manifest.sha256_file(f) == hashlib.sha256(b"a" * 4096).hexdigest()
    # same size, and its old mtime put back: the ctime still tells (past the coarsest
    # timestamp step of older kernels, a few milliseconds)
    st = f.stat()
    time.sleep(0.05)
    f.write_bytes(b"b" * 4096)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert manifest.sha256_file(f) == hashlib.sha256(b"b" * 4096).hexdigest()
    _old(f, b"c" * 5000)  # another size
    assert manifest.sha256_file(f) == hashlib.sha256(b"c" * 5000).hexdigest()
    assert len(reads) == 3


def test_fresh_small_and_uncacheable_files_are_hashed_every_time(tmp_path, hash_cache, monkeypatch):
    cache, reads, clock = hash_cache
    fresh = _old(tmp_path / "fresh.bin", b"f" * 4096)  # an old mtime, but just written: its ctime is now
    small = _old(tmp_path / "small.bin", b"s" * 100)  # under CACHE_MIN_BYTES
    clock["ahead"] = 0.0  # the real clock: fresh.bin may still be being written
    for _ in range(2):
        manifest.sha256_file(fresh)
        manifest.sha256_file(small)
    assert reads == [str(fresh), str(small)] * 2
    assert not cache.exists()
    clock["ahead"] = 60.0
    # a garbage entry is ignored and replaced
    big = _old(tmp_path / "big.bin", b"g" * 4096)
    manifest.sha256_file(big)
    (entry,) = cache.glob("*.json")
    entry.write_text("{not json")
    assert manifest.sha256_file(big) == hashlib.sha256(b"g" * 4096).hexdigest()
    assert json.loads(entry.read_text())["sha256"] == hashlib.sha256(b"g" * 4096).hexdigest()
    # a cache that cannot be written costs only the saving; "off" turns it off
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    for where in (str(blocker / "cache"), "off"):
        monkeypatch.setenv(manifest.CACHE_ENV, where)
        n = len(reads)
        assert manifest.sha256_file(big) == manifest.sha256_file(big) == hashlib.sha256(b"g" * 4096).hexdigest()
        assert len(reads) == n + 2
    assert list(tmp_path.glob("**/*.tmp-*")) == []
