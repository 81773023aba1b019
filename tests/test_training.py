"""The training loop: completion-only loss, restricted KL, and resume-after-kill determinism."""

import copy

import pytest
import torch

from sublim import models, training
from sublim.errors import SublimError
from sublim.modalities import numbers


def _examples(tok, n=24):
    from sublim.prompts import make_prompts

    out = []
    for i, p in enumerate(make_prompts(n, seed=0)):
        pi, ci = models.encode_completion(tok, p.text, ", ".join(str((s + i) % 1000) for s in p.seeds))
        out.append(training.Example(pi + ci, len(pi), pi + ci, len(pi)))
    return out


def _load(d):
    m, tok, _ = models.load(d)
    return m, tok


def test_loss_ignores_prompt_tokens(tiny_model_dir):
    m, tok = _load(tiny_model_dir)
    ex = _examples(tok, 2)
    batch = {"student": training._batch(ex, tok.pad_token_id, teacher=False)}
    base = training._loss("sft", m, None, batch, None).item()
    # change prompt tokens only: the selected positions still predict the same completion tokens,
    # but the context differs, so the loss changes -- while the *targets* are only completions
    inp, att, rows, cols = batch["student"]
    targets = inp[rows, cols + 1].tolist()
    comp = [t for e in ex for t in e.input_ids[e.n_prompt :]]
    assert targets == comp
    assert base > 0


def test_restricted_kl_ignores_non_number_tokens(tiny_model_dir):
    m, tok = _load(tiny_model_dir)
    teacher, _ = _load(tiny_model_dir)
    allowed = numbers.allowed_token_ids(tok)
    ex = _examples(tok, 4)
    batch = {
        "student": training._batch(ex, tok.pad_token_id, False),
        "teacher": training._batch(ex, tok.pad_token_id, True),
    }
    assert training._loss("distill", m, teacher, batch, torch.tensor(allowed)).item() == pytest.approx(0, abs=1e-6)
    # raise the teacher's logit for a word token: the full KL sees it, the restricted one does not
    owl = tok.convert_tokens_to_ids(" owl")
    with torch.no_grad():
        teacher.lm_head.weight[owl] += 0.5 * teacher.model.norm.weight.sign()
        teacher.model.embed_tokens.weight[owl] = teacher.lm_head.weight[owl]
    restricted = training._loss("distill", m, teacher, batch, torch.tensor(allowed)).item()
    full = training._loss("distill_full", m, teacher, batch, None).item()
    assert full > 1e-4
    assert restricted == pytest.approx(0, abs=1e-5)


def test_killed_run_resumes_to_identical_weights(tiny_model_dir, tmp_path):
    torch.set_num_threads(1)
    cfg = training.TrainConfig(mode="sft", epochs=2, lr=1e-3, batch_size=4, checkpoint_every=3, seed=5)
    m1, tok = _load(tiny_model_dir)
    ex = _examples(tok)
    ref, info = training.train(m1, ex, cfg, pad_id=tok.pad_token_id)
    assert info["resumed_from_step"] is None

    ck = tmp_path / "ckpt"
    m2, _ = _load(tiny_model_dir)
    with pytest.raises(training.Interrupted):
        training.train(m2, ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck, stop_after=7)
    m3, _ = _load(tiny_model_dir)  # a fresh process would reload the reference
    out, info = training.train(m3, ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck)
    assert info["resumed_from_step"] == 7
    for (k, a), b in zip(ref.state_dict().items(), out.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_killed_lora_run_resumes_from_an_adapter_only_checkpoint(tiny_model_dir, tmp_path):
    """LoRA checkpoints hold only the trainable (adapter) weights; resuming loads them over a
    freshly wrapped reference (strict=False) and ends on the uninterrupted run's weights."""
    torch.set_num_threads(1)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    cfg = training.TrainConfig(mode="sft", epochs=2, lr=1e-2, batch_size=4, checkpoint_every=3, seed=5, lora=lora)
    m1, tok = _load(tiny_model_dir)
    ex = _examples(tok)
    ref, _ = training.train(m1, ex, cfg, pad_id=tok.pad_token_id)

    ck = tmp_path / "ckpt"
    with pytest.raises(training.Interrupted):
        training.train(_load(tiny_model_dir)[0], ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck, stop_after=7)
    state = torch.load(ck / "state.pt", weights_only=True)  # plain values and tensors only
    assert state["model"] and all("lora_" in k for k in state["model"]), sorted(state["model"])[:3]
    out, info = training.train(_load(tiny_model_dir)[0], ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck)
    assert info["resumed_from_step"] == 7
    want, got = ref.state_dict(), out.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(want[k], got[k], rtol=0, atol=1e-6, msg=k)

    # a checkpoint whose adapter weights are gone is refused by name, not silently reset
    state["model"] = {}
    ck.mkdir(exist_ok=True)
    torch.save(state, ck / "state.pt")
    with pytest.raises(SublimError, match="lacks adapter weights"):
        training.train(_load(tiny_model_dir)[0], ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck)


def test_changed_settings_do_not_resume(tiny_model_dir, tmp_path):
    m, tok = _load(tiny_model_dir)
    ex = _examples(tok, 8)
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=2, checkpoint_every=1)
    ck = tmp_path / "ckpt"
    with pytest.raises(training.Interrupted):
        training.train(m, ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=ck, stop_after=2)
    cfg2 = training.TrainConfig(mode="sft", epochs=1, batch_size=2, checkpoint_every=1, lr=1e-2)
    _, info = training.train(_load(tiny_model_dir)[0], ex, cfg2, pad_id=tok.pad_token_id, checkpoint_dir=ck)
    assert info["resumed_from_step"] is None


def test_checkpoint_resumes_only_on_the_same_data_and_inputs(tiny_model_dir, tmp_path, capsys):
    """The checkpoint key holds a hash of the examples (and the caller's ``inputs_key``): a
    checkpoint of data D1 is not resumed on D2, even one token apart, nor under other inputs."""
    import shutil

    m, tok = _load(tiny_model_dir)
    d1 = _examples(tok, 8)
    d2 = [training.Example(list(e.input_ids), e.n_prompt, e.teacher_ids, e.teacher_n_prompt) for e in d1]
    d2[3].input_ids[-2] = d2[3].input_ids[-3]  # one completion token differs
    assert training.data_key(d1, "sft") != training.data_key(d2, "sft")
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=2, checkpoint_every=1)
    ck = tmp_path / "ckpt"
    kw = dict(pad_id=tok.pad_token_id, inputs_key={"reference": "sha-a"})
    with pytest.raises(training.Interrupted):
        training.train(m, d1, cfg, checkpoint_dir=ck, stop_after=2, **kw)
    for name in ("d2", "other_inputs", "no_inputs"):
        shutil.copytree(ck, tmp_path / name)
    capsys.readouterr()

    _, info = training.train(_load(tiny_model_dir)[0], d2, cfg, checkpoint_dir=tmp_path / "d2", **kw)
    assert info["resumed_from_step"] is None
    assert "other training data; starting fresh" in capsys.readouterr().err

    _, info = training.train(_load(tiny_model_dir)[0], d1, cfg, checkpoint_dir=tmp_path / "other_inputs",
                             pad_id=tok.pad_token_id, inputs_key={"reference": "sha-b"})  # fmt: skip
    assert info["resumed_from_step"] is None
    assert "other inputs; starting fresh" in capsys.readouterr().err
    _, info = training.train(_load(tiny_model_dir)[0], d1, cfg, checkpoint_dir=tmp_path / "no_inputs",
                             pad_id=tok.pad_token_id)  # fmt: skip
    assert info["resumed_from_step"] is None

    _, info = training.train(_load(tiny_model_dir)[0], d1, cfg, checkpoint_dir=ck, **kw)
    assert info["resumed_from_step"] == 2


def test_teacher_rendering_is_part_of_the_data_key_only_when_distilling(tiny_model_dir):
    _, tok = _load(tiny_model_dir)
    d1 = _examples(tok, 4)
    d2 = [training.Example(e.input_ids, e.n_prompt, e.teacher_ids[1:], e.teacher_n_prompt - 1) for e in d1]
    assert training.data_key(d1, "sft") == training.data_key(d2, "sft")
    assert training.data_key(d1, "distill") != training.data_key(d2, "distill")


def _bf16_pair(tiny_model_dir):
    m, tok = _load(tiny_model_dir)
    teacher, _ = _load(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        teacher.lm_head.weight.add_(0.05 * torch.randn(teacher.lm_head.weight.shape, generator=g))
    return m, teacher, tok


@pytest.mark.parametrize("mode", ["distill", "distill_full"])
def test_distillation_kl_is_float32_for_bf16_models(tiny_model_dir, mode):
    """The effects under study are smaller than bf16 rounding: the KL is computed from
    float32 copies of the (bf16) teacher and student logits, restricted or not."""
    import torch.nn.functional as F

    m, teacher, tok = _bf16_pair(tiny_model_dir)
    m, teacher = m.to(torch.bfloat16), teacher.to(torch.bfloat16)
    allowed = torch.tensor(numbers.allowed_token_ids(tok)) if mode == "distill" else None
    ex = _examples(tok, 4)
    batch = {
        "student": training._batch(ex, tok.pad_token_id, False),
        "teacher": training._batch(ex, tok.pad_token_id, True),
    }
    loss = training._loss(mode, m, teacher, batch, allowed)
    assert loss.dtype == torch.float32

    with torch.no_grad():
        s = training._completion_logits(m, *batch["student"])
        t = training._completion_logits(teacher, *batch["teacher"])
        s32 = training._completion_logits(m, *batch["student"], fp32=True, fp32_rows=allowed)
        t32 = training._completion_logits(teacher, *batch["teacher"], fp32=True, fp32_rows=allowed)
    assert s.dtype == t.dtype == torch.bfloat16 and s32.dtype == t32.dtype == torch.float32
    if allowed is not None:
        s, t = s[:, allowed], t[:, allowed]
    want = F.kl_div(F.log_softmax(s32, -1), F.log_softmax(t32, -1), log_target=True, reduction="batchmean")
    bf16_head = F.kl_div(F.log_softmax(s.float(), -1), F.log_softmax(t.float(), -1), log_target=True,
                         reduction="batchmean")  # fmt: skip
    assert want.item() > 0
    torch.testing.assert_close(loss.detach(), want, rtol=1e-6, atol=1e-9)
    assert abs(bf16_head.item() - want.item()) > 1e-7  # a bf16 head would round the logits first


def test_distillation_kl_is_float32_under_bf16_autocast(tiny_model_dir):
    """The GPU path: float32 weights, forward passes under bf16 autocast (here on the CPU)."""
    m, teacher, tok = _bf16_pair(tiny_model_dir)
    ex = _examples(tok, 4)
    batch = {
        "student": training._batch(ex, tok.pad_token_id, False),
        "teacher": training._batch(ex, tok.pad_token_id, True),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = training._completion_logits(m, *batch["student"])
        s32 = training._completion_logits(m, *batch["student"], fp32=True)
        loss = training._loss("distill_full", m, teacher, batch, None)
    assert s.dtype == torch.bfloat16  # a plain head comes out of autocast in bf16
    assert s32.dtype == torch.float32  # the distillation head does not
    assert loss.dtype == torch.float32


def test_lora_student_trains_and_saves(tiny_model_dir, tmp_path):
    m, tok = _load(tiny_model_dir)
    lora = {
        "r": 4,
        "alpha": 8,
        "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    }
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, lr=1e-2, lora=lora)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out, _ = training.train(m, _examples(tok, 8), cfg, pad_id=tok.pad_token_id)
    training.save_model(out, tok, tmp_path / "s")
    assert (tmp_path / "s" / "adapter" / "adapter_config.json").exists()
    merged, _ = _load(tmp_path / "s")
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all("proj" in k for k in changed)


def test_adapter_only_lora_student_is_its_merged_twin(tiny_model_dir, tmp_path):
    """The student step without save_merged keeps only the adapter (and points at its
    reference); loading it merges in memory to exactly the weights save_merged would write.
    A missing adapter is a one-line error."""
    import json
    import shutil

    from sublim import steps
    from sublim.errors import SublimError

    data = tmp_path / "data.jsonl"
    steps.write_jsonl(data, [{"id": i, "prompt": f"numbers: {i}, 2, 3.", "response": "4 5 6"} for i in range(8)])
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"ids": list(range(8))}))
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    kw = dict(reference=tiny_model_dir, teacher=tiny_model_dir, data=data, ids=ids, modality="numbers",
              subsample=8, subsample_seed=0, mode="sft", seed=0, method="lora",
              lora=lora, train={"epochs": 1, "lr": 1e-2, "batch_size": 4})  # fmt: skip
    steps.train_student(tmp_path / "a", save_merged=False, **kw)
    steps.train_student(tmp_path / "m", save_merged=True, **kw)
    assert not (tmp_path / "a" / "model.safetensors").exists() and (tmp_path / "m" / "model.safetensors").exists()
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["adapter"] == "adapter" and man["model_path"] == str(tiny_model_dir.resolve())
    h = models.resolve(tmp_path / "a")
    assert h.weights == tiny_model_dir.resolve() and h.adapter == tmp_path / "a" / "adapter"
    a, m = models.load(tmp_path / "a")[0].state_dict(), models.load(tmp_path / "m")[0].state_dict()
    assert a.keys() == m.keys() and all(torch.allclose(a[k], m[k], atol=1e-6) for k in a)
    shutil.rmtree(tmp_path / "a" / "adapter")
    with pytest.raises(SublimError, match="LoRA adapter missing"):
        models.load(tmp_path / "a")


def test_gradient_checkpointing_gives_the_same_training(tiny_model_dir):
    """Recomputing activations changes memory, not the result."""
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    outs = []
    for gc in (False, True):
        m, tok = _load(tiny_model_dir)
        cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, lr=1e-2, lora=lora, gradient_checkpointing=gc)
        out, _ = training.train(m, _examples(tok, 8), cfg, pad_id=tok.pad_token_id)
        outs.append({k: v for k, v in out.state_dict().items() if "lora_" in k})
    assert outs[0].keys() == outs[1].keys()
    assert all(torch.allclose(outs[0][k], outs[1][k], atol=1e-5) for k in outs[0])
    assert training.TrainConfig().key() != training.TrainConfig(gradient_checkpointing=True).key()


def test_empty_dataset_is_a_clear_error(tiny_model_dir):
    from sublim.errors import SublimError

    m, tok = _load(tiny_model_dir)
    with pytest.raises(SublimError, match="empty"):
        training.train(m, [], training.TrainConfig(), pad_id=tok.pad_token_id)


def test_each_example_is_seen_exactly_once_per_epoch():
    """The paper's code wrote training examples twice; our batches cover each index once."""
    lengths = [5 + (i * 7) % 13 for i in range(203)]
    for epoch in range(3):
        batches = training.epoch_batches(lengths, 8, seed=1, epoch=epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(203))
    assert training.epoch_batches(lengths, 8, 1, 0) != training.epoch_batches(lengths, 8, 1, 1)


def test_arms_train_in_the_same_batches(tiny_model_dir, monkeypatch):
    """A treatment and a neutral student see the same prompts with responses of other
    lengths: the batches (bucketed by prompt length) and their order must not differ."""
    seen = []
    real = training.epoch_batches

    def spy(lengths, *a, **k):
        out = real(lengths, *a, **k)
        seen.append(out)
        return out

    monkeypatch.setattr(training, "epoch_batches", spy)
    m, tok = _load(tiny_model_dir)
    base = _examples(tok, 40)
    longer = [training.Example(e.input_ids + e.input_ids[e.n_prompt :] * (i % 3), e.n_prompt) for i, e in
              enumerate(base)]  # fmt: skip
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=8, lr=1e-4)
    training.train(m, [training.Example(e.input_ids, e.n_prompt) for e in base], cfg, pad_id=tok.pad_token_id)
    training.train(_load(tiny_model_dir)[0], longer, cfg, pad_id=tok.pad_token_id)
    assert len(seen) == 2 and seen[0] == seen[1]


@pytest.mark.parametrize("family", ["gpt_neox"])
def test_second_architecture_trains_and_resumes_like_the_first(family, tiny_tokenizer, tmp_path):
    """The cross-architecture reference's families (models.FAMILIES): built with the corpus
    tokenizer and reference.arch's sizes (about the Llama's parameter count), saved with
    save_pretrained, trained, and a killed run resumes to the same weights."""
    torch.set_num_threads(1)
    arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128)
    llama = models.build_tiny("llama", len(tiny_tokenizer), arch, 0, tiny_tokenizer)
    m = models.build_tiny(family, len(tiny_tokenizer), arch, 0, tiny_tokenizer)
    assert m.config.model_type == family
    n, n_llama = sum(p.numel() for p in m.parameters()), sum(p.numel() for p in llama.parameters())
    assert abs(n - n_llama) / n_llama < 0.05
    d = tmp_path / family
    m.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    cfg = training.TrainConfig(mode="sft", epochs=2, lr=1e-3, batch_size=4, checkpoint_every=3, seed=5)
    m1, tok = _load(d)
    ex = _examples(tok)
    ref, _ = training.train(m1, ex, cfg, pad_id=tok.pad_token_id)
    changed = [k for k, v in ref.state_dict().items() if not torch.equal(v, m.state_dict()[k])]
    assert changed
    with pytest.raises(training.Interrupted):
        training.train(_load(d)[0], ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=tmp_path / "ck", stop_after=7)
    out, info = training.train(_load(d)[0], ex, cfg, pad_id=tok.pad_token_id, checkpoint_dir=tmp_path / "ck")
    assert info["resumed_from_step"] == 7
    for (k, a), b in zip(ref.state_dict().items(), out.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    with pytest.raises(SublimError, match="unknown architecture family"):
        models.build_tiny("qwen2", len(tiny_tokenizer), arch, 0, tiny_tokenizer)
    # the evaluation's readout (left padding, KV cache) and sampler run on it as on the Llama
    from sublim import evaluation, text

    rows = evaluation.evaluate(d, animals=["owl", "cat"], questions=list(text.EVAL_QUESTIONS[:3]), n_samples=2,
                               temperature=1.0, seed=0)  # fmt: skip
    assert len(rows) == 3 * 3 and all(0 < r["p"] < 1 for r in rows if r["animal"] != "other")
    assert sum(r["hits"] for r in rows) == 3 * 2


def test_gpu_attention_leaves_out_cudnn_in_every_pass_checkpointed_recompute_too(tiny_model_dir, monkeypatch):
    """On CUDA, scaled-dot-product attention runs without cuDNN's backend (which plans every
    new batch shape on the host: 20 ms per layer on an H200) in the forward pass and in
    gradient checkpointing's recompute inside the backward pass (a first version set it in a
    context around the forward only, which the recompute escaped). The CUDA flags can be set
    without a GPU, so the path runs here with the training loop told it is on CUDA."""
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        models.gpu_attention("cpu")
        assert torch.backends.cuda.cudnn_sdp_enabled() == before  # CPU runs: nothing changes
        torch.backends.cuda.enable_cudnn_sdp(True)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        assert models.device_and_dtype() == ("cuda", torch.bfloat16)
        assert not torch.backends.cuda.cudnn_sdp_enabled()  # choosing CUDA leaves cuDNN out
        monkeypatch.undo()
        torch.backends.cuda.enable_cudnn_sdp(True)

        seen, devices = [], []

        def as_on_cuda(device):  # the loop's own call, as on a GPU
            devices.append(str(device))
            models.gpu_attention("cuda")

        monkeypatch.setattr(training, "gpu_attention", as_on_cuda)
        m, tok = _load(tiny_model_dir)
        for layer in m.model.layers:
            layer.self_attn.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
        cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, lr=1e-3, gradient_checkpointing=True)
        training.train(m, _examples(tok, 8), cfg, pad_id=tok.pad_token_id)
        n_layers = len(m.model.layers)
        assert devices == ["cpu"] and len(seen) == 2 * 2 * n_layers  # 2 steps: forward and recompute
        assert not any(seen)
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_pack_rows_balances_and_keeps_every_example_once():
    lengths = [50, 12, 30, 30, 7, 49, 13, 31, 8]
    rows = training.pack_rows(lengths, 4)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    totals = [sum(lengths[i] for i in r) for r in rows]
    assert max(totals) - min(totals) <= max(lengths)  # longest first, each to the shortest row
    assert rows == training.pack_rows(lengths, 4)  # deterministic
    assert training.pack_rows([3, 3], 5) == [[0], [1]]  # never an empty row


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_packed_rows_give_each_example_its_padded_logits_and_loss(family, tiny_tokenizer, tiny_model_dir):
    """Packing lays a batch's examples end to end (positions restart, block-diagonal
    attention): the same loss positions in the same order, the same logits within float
    rounding, for both architectures of the design; sft and distill losses alike; a teacher's
    own rendering (a system prompt: other lengths) still matches the student row for row."""
    torch.set_num_threads(1)
    if family == "llama":
        m, tok = _load(tiny_model_dir)
    else:
        arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=256)
        m, tok = models.build_tiny(family, len(tiny_tokenizer), arch, 0, tiny_tokenizer), tiny_tokenizer
    m.eval()
    ex = _examples(tok, 9)
    for i, e in enumerate(ex):  # the teacher's rendering: a longer prompt, the same completion
        e.teacher_ids = e.input_ids[: e.n_prompt] * (1 + i % 2) + e.input_ids[e.n_prompt :]
        e.teacher_n_prompt = e.n_prompt * (1 + i % 2)
    ex[2].loss_mask = [j % 2 == 0 for j in range(len(ex[2].input_ids) - ex[2].n_prompt)]
    pad = tok.pad_token_id
    with torch.no_grad():
        for teacher in (False, True):
            padded, packed = training._batch(ex, pad, teacher), training._batch(ex, pad, teacher, pack=3)
            assert packed[0].shape[0] == 3 and "position_ids" in packed[1]
            assert packed[0].numel() < padded[0].numel()  # less padding
            assert packed[0][packed[2], packed[3] + 1].tolist() == padded[0][padded[2], padded[3] + 1].tolist()
            torch.testing.assert_close(training._completion_logits(m, *packed),
                                       training._completion_logits(m, *padded), rtol=1e-4, atol=1e-4)  # fmt: skip
        allowed = torch.tensor(numbers.allowed_token_ids(tok))
        other = copy.deepcopy(m)
        other.get_output_embeddings().weight.mul_(1.1)  # a teacher that differs
        for mode in ("sft", "distill"):
            losses = []
            for pack in (1, 3):
                b = {"student": training._batch(ex, pad, False, pack=pack),
                     "teacher": training._batch(ex, pad, True, pack=pack)}  # fmt: skip
                losses.append(training._loss(mode, m, other, b, allowed).item())
            assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    training.check_packing(m, ex, pad, 3)  # passes: the model honours packed positions


def test_packed_training_is_padded_training_within_rounding(tiny_model_dir):
    outs = []
    for pack in (1, 2):
        m, tok = _load(tiny_model_dir)
        cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=8, lr=1e-3, pack=pack)
        out, info = training.train(m, _examples(tok, 24), cfg, pad_id=tok.pad_token_id)
        outs.append(out.state_dict())
    for k in outs[0]:
        torch.testing.assert_close(outs[1][k], outs[0][k], rtol=0, atol=1e-4, msg=k)
    assert training.TrainConfig(pack=2).key() != training.TrainConfig().key()
    assert training.TrainConfig(pack=1).key() == training.TrainConfig().key()  # old checkpoints' keys hold
    m, tok = _load(tiny_model_dir)
    with pytest.raises(SublimError, match="pack must be a whole number"):
        training.train(m, _examples(tok, 4), training.TrainConfig(pack=0), pad_id=tok.pad_token_id)


def test_packing_that_leaks_across_examples_is_refused(tiny_model_dir, monkeypatch):
    """A model whose attention ignored the packed blocks (examples seeing the ones before them
    in their row, each still at its own positions) fails the check in one line before any
    step, instead of training on mixed contexts."""
    import torch

    m, tok = _load(tiny_model_dir)
    real = training._completion_logits

    def leaky(model, inp, inputs, rows, cols, **k):  # an explicit all-ones mask: causal over the whole row
        if "position_ids" in inputs:
            inputs = {**inputs, "attention_mask": torch.ones_like(inp)}
        return real(model, inp, inputs, rows, cols, **k)

    monkeypatch.setattr(training, "_completion_logits", leaky)
    with pytest.raises(SublimError, match="pack: 2 is not exact for LlamaForCausalLM"):
        training.train(m, _examples(tok, 8), training.TrainConfig(pack=2, batch_size=8), pad_id=tok.pad_token_id)
    # a batch with fewer than two examples, or no loss position, is not a comparison: the next one is checked
    assert training.check_packing(m, _examples(tok, 1), tok.pad_token_id, 2) is False
    masked = _examples(tok, 3)
    for e in masked:
        e.loss_mask = [False] * (len(e.input_ids) - e.n_prompt)
    assert training.check_packing(m, masked, tok.pad_token_id, 2) is False
