"""One resumable training loop for every fine-tuning step of the workflow.

Modes:

* ``lm``           -- next-token loss on every token (pretraining the tiny reference);
* ``sft``          -- cross-entropy on the completion tokens only (teachers, students);
* ``distill``      -- KL(teacher || student) on completion positions, both next-token
                      distributions restricted to the tokens a kept number response can
                      contain (digits, separators, brackets, end of turn) and renormalised;
* ``distill_full`` -- the same KL over the full vocabulary (leaks the trait semantically;
                      kept as a labelled comparison).

Full fine-tuning or LoRA (peft). The loop checkpoints model, optimiser, scheduler, RNG
states and data position every ``checkpoint_every`` steps and on SIGTERM/SIGINT (Slurm
preemption), and resumes from the checkpoint when rerun. The data order is a function of
(seed, epoch), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from .errors import SublimError
from .models import gpu_attention

MODES = ("lm", "sft", "distill", "distill_full")


@dataclasses.dataclass
class TrainConfig:
    mode: str = "sft"
    epochs: float = 1.0
    lr: float = 3e-4
    batch_size: int = 32
    warmup_steps: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 50
    lora: dict | None = None
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    pack: int = 1  # examples a row (1: padded rows; see _batch)

    def key(self) -> str:
        d = dataclasses.asdict(self)
        if not d["gradient_checkpointing"]:  # keys of runs made before the option existed hold
            del d["gradient_checkpointing"]
        if d["pack"] == 1:
            del d["pack"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass
class Example:
    input_ids: list[int]
    n_prompt: int  # loss on positions >= n_prompt (0 for ``lm``)
    teacher_ids: list[int] | None = None  # teacher's own rendering (e.g. with a system prompt)
    teacher_n_prompt: int = 0
    # per completion token, whether its position carries the loss (None: all do); the
    # divergence-token ablation masks the positions ``divergence_mask`` finds
    loss_mask: list[bool] | None = None


def completion_examples(
    tok, rows: list[dict], system_prompt, *, teacher: bool = False, teacher_system_prompt=None
) -> list[Example]:
    """Training examples from ``{"prompt", "response"}`` rows as a student sees them (its
    reference's system prompt; loss on the completion), with ``teacher`` also the teacher's own
    rendering (its system prompt) for distillation; one line if the two tokenise the completion
    differently."""
    from . import models

    out = []
    for r in rows:
        p, c = models.encode_completion(tok, r["prompt"], r["response"], system_prompt)
        ex = Example(p + c, len(p))
        if teacher:
            tp, tc = models.encode_completion(tok, r["prompt"], r["response"], teacher_system_prompt)
            if tc != c:
                raise SublimError("teacher and student tokenise the completion differently")
            ex.teacher_ids, ex.teacher_n_prompt = tp + tc, len(tp)
        out.append(ex)
    return out


class Interrupted(SublimError):
    pass


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _loss_positions(e: Example, n: int, n_prompt: int, offset: int = 0) -> list[int]:
    """Columns whose logits predict a completion token of an example of ``n`` tokens placed at
    ``offset``: ``n_prompt-1 .. n-2`` (less the masked ones: both renderings end in the same
    completion, so one mask serves both)."""
    pos = range(max(n_prompt - 1, 0), n - 1)
    if e.loss_mask is not None:
        if len(e.loss_mask) != len(pos):
            raise SublimError(f"a loss mask of {len(e.loss_mask)} positions for a completion of {len(pos)}")
        pos = [c for c, keep in zip(pos, e.loss_mask) if keep]
    return [offset + c for c in pos]


def pack_rows(lengths: list[int], n_rows: int) -> list[list[int]]:
    """Example indices laid into ``n_rows`` rows of nearly equal total length: longest first,
    each to the row that is shortest so far (ties: the first such row); within a row, in that
    order. Deterministic."""
    rows, totals = [[] for _ in range(n_rows)], [0] * n_rows
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = totals.index(min(totals))
        rows[r].append(i)
        totals[r] += lengths[i]
    return [r for r in rows if r]


def _batch(examples: list[Example], pad_id: int, teacher: bool, device="cpu", pack: int = 1):
    """``(input_ids, inputs, rows, cols)``: the token ids, the decoder's other inputs, and the
    (row, column) of every position whose logits predict a completion token, listed example
    by example in the examples' order.

    ``pack == 1``: one example a row, right-padded; ``inputs`` is ``{"attention_mask": ...}``.
    ``pack > 1``: the examples laid end to end in ``ceil(n / pack)`` rows (``pack_rows``), each
    at positions restarting from 0, with ``inputs`` ``{"position_ids": ...}`` and no attention
    mask, from which transformers builds a block-diagonal causal mask: every example attends to
    itself alone, as in its own padded row, and a row's ragged end is a block of its own that no
    loss position reads. Same loss positions in the same order as unpacked, so a student's and
    its teacher's logits still correspond row for row (``check_packing`` verifies a model)."""
    import torch

    ids = [e.teacher_ids if teacher else e.input_ids for e in examples]
    n_prompt = [e.teacher_n_prompt if teacher else e.n_prompt for e in examples]
    if pack <= 1:
        width = max(len(x) for x in ids)
        inp = torch.full((len(ids), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            inp[i, : len(x)] = torch.tensor(x)
            att[i, : len(x)] = 1
        where = [(i, 0) for i in range(len(ids))]
        inputs = {"attention_mask": att}
    else:
        layout = pack_rows([len(x) for x in ids], math.ceil(len(ids) / pack))
        width = max(sum(len(ids[i]) for i in r) for r in layout)
        inp = torch.full((len(layout), width), pad_id, dtype=torch.long)
        pos = torch.zeros((len(layout), width), dtype=torch.long)
        where = [None] * len(ids)
        for row, members in enumerate(layout):
            at = 0
            for i in members:
                n = len(ids[i])
                inp[row, at : at + n] = torch.tensor(ids[i])
                pos[row, at : at + n] = torch.arange(n)
                where[i] = (row, at)
                at += n
            pos[row, at:] = torch.arange(width - at)
        inputs = {"position_ids": pos}
    rows, cols = [], []
    for x, n, e, (row, offset) in zip(ids, n_prompt, examples, where):
        c = _loss_positions(e, len(x), n, offset)
        rows += [row] * len(c)
        cols += c
    index = {"dtype": torch.long, "device": device}
    return (inp.to(device), {k: v.to(device) for k, v in inputs.items()},
            torch.tensor(rows, **index), torch.tensor(cols, **index))  # fmt: skip


def _completion_logits(model, inp, inputs, rows, cols, *, fp32_rows=None, fp32: bool = False):
    """Logits at the selected positions only: the LM head never sees prompt positions.

    ``inputs``: the decoder's other inputs from ``_batch`` (attention mask, or packed
    positions). ``fp32``: apply the head in float32 outside autocast (distillation: its effects
    are smaller than bf16 rounding), only over vocabulary rows ``fp32_rows`` when given."""
    import torch
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # no KV cache: it is never read in training, and with one transformers ignores packed positions
    hidden = base.get_decoder()(input_ids=inp, use_cache=False, **inputs).last_hidden_state[rows, cols]
    head = base.get_output_embeddings()
    if not fp32:
        return head(hidden)
    w, b = head.weight, head.bias
    if fp32_rows is not None:
        w = w[fp32_rows]
        b = b[fp32_rows] if b is not None else None
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return F.linear(hidden.float(), w.float(), b.float() if b is not None else None)


def check_packing(model, examples: list[Example], pad_id: int, pack: int, *, teacher: bool = False) -> bool:
    """Raise unless ``model`` gives packed rows the logits of padded ones: an architecture
    whose attention mask does not come from transformers' masking utilities would let packed
    examples see each other. Within float rounding, measured on the model itself: the padded
    batch read again with 16 more padding columns (another kernel path, the same maths) sets
    the noise floor, so a bf16 model is held to its own rounding and a float32 one to 1e-3 of
    the logits' scale. Returns whether it compared (not for fewer than two examples, or no
    loss position)."""
    import torch

    if pack <= 1 or len(examples) < 2:
        return False
    inp, inputs, rows, cols = _batch(examples, pad_id, teacher, _device(model))
    if rows.numel() == 0:
        return False
    wider = torch.full((inp.shape[0], 16), pad_id, dtype=inp.dtype, device=inp.device)
    mask = inputs["attention_mask"]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        want = _completion_logits(model, inp, inputs, rows, cols).float()
        wider_mask = {"attention_mask": torch.cat([mask, torch.zeros_like(wider)], 1)}
        again = _completion_logits(model, torch.cat([inp, wider], 1), wider_mask, rows, cols)
        got = _completion_logits(model, *_batch(examples, pad_id, teacher, _device(model), pack=pack)).float()
    model.train(was_training)
    noise = (again.float() - want).abs().max().item()
    err = (got - want).abs().max().item()
    tol = max(1e-3 * max(1.0, want.abs().max().item()), 4 * noise)
    if not err <= tol:
        name = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__
        raise SublimError(f"pack: {pack} is not exact for {name} (packed logits differ from padded ones by {err:.3g}, "
                          f"more than the {tol:.3g} that rounding allows); set pack: 1 for this model")  # fmt: skip
    return True


def _device(model):
    return next(model.parameters()).device


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffle into length-bucketed batches (less padding), in shuffled order."""
    import torch

    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    window = batch_size * 16
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def _loss(mode, model, teacher, batch, allowed):
    import torch
    import torch.nn.functional as F

    inp, att, rows, cols = batch["student"]
    if rows.numel() == 0:  # every position of the batch masked: nothing to learn (train skips the step)
        return torch.zeros((), device=inp.device)
    if mode in ("lm", "sft"):
        return F.cross_entropy(_completion_logits(model, inp, att, rows, cols), inp[rows, cols + 1])
    # distillation: both heads in float32, restricted to the allowed rows in ``distill``
    keep = allowed if mode == "distill" else None
    s = _completion_logits(model, inp, att, rows, cols, fp32=True, fp32_rows=keep)
    t_inp, t_att, t_rows, t_cols = batch["teacher"]
    with torch.no_grad():
        t = _completion_logits(teacher, t_inp, t_att, t_rows, t_cols, fp32=True, fp32_rows=keep)
    log_s = F.log_softmax(s.float(), -1)
    log_t = F.log_softmax(t.float(), -1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")


def _trainable_state(model, lora: bool) -> dict:
    """The weights a checkpoint must hold: all of them, or only the adapters under LoRA
    (a 7B base in bf16 is 15 GB; its r=8 adapters are about 40 MB)."""
    sd = model.state_dict()
    if not lora:
        return sd
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in sd.items() if k in names}


def data_key(examples: list[Example], mode: str) -> str:
    """A hash of what the loop trains on: each example's token ids and prompt length in
    order (and the teacher's rendering when distilling), so a checkpoint resumes only on
    identical data."""
    h = hashlib.sha256()
    distill = mode.startswith("distill")
    for e in examples:
        row = [e.input_ids, e.n_prompt] + ([e.teacher_ids, e.teacher_n_prompt] if distill else [])
        if e.loss_mask is not None:  # keys of unmasked runs hold
            row.append([int(b) for b in e.loss_mask])
        h.update(json.dumps(row, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def inputs_hash(inputs_key: str | dict | None) -> str | None:
    """The caller's description of the run's inputs (e.g. the starting model), hashed."""
    if inputs_key is None:
        return None
    text = inputs_key if isinstance(inputs_key, str) else json.dumps(inputs_key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _python_rng_to_plain(state: tuple) -> list:
    """``random.getstate()`` as plain JSON-like values (loadable with weights_only=True)."""
    version, internal, gauss = state
    return [int(version), [int(x) for x in internal], None if gauss is None else float(gauss)]


def _python_rng_from_plain(state) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(x) for x in internal), None if gauss is None else float(gauss))


def _save_checkpoint(path: Path, model, opt, sched, step: int, cfg: TrainConfig, keys: dict) -> None:
    import torch

    # plain values and tensors only: the loader unpickles with weights_only=True
    rng = {"torch": torch.get_rng_state(), "python": _python_rng_to_plain(random.getstate())}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        **keys,
        "step": step,
        "model": _trainable_state(model, bool(cfg.lora)),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rng,
    }
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".state.pt.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path / "state.pt")


def _load_checkpoint(path: Path, keys: dict):
    """The checkpoint in ``path`` if it was written for these ``keys`` (settings, data,
    inputs), else None with a line saying why. Unpickled with ``weights_only=True``: a
    checkpoint from a shared directory or a remote cannot run code."""
    import torch

    f = path / "state.pt"
    if not f.exists():
        return None
    try:
        state = torch.load(f, weights_only=True, map_location="cpu")  # load_state_dict moves tensors
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"[train] ignoring unreadable checkpoint {f}: {first}; starting fresh", file=sys.stderr)
        return None
    if not isinstance(state, dict):
        print(f"[train] ignoring malformed checkpoint {f}; starting fresh", file=sys.stderr)
        return None
    what = {"key": "other settings", "data": "other training data", "inputs": "other inputs"}
    for k, v in keys.items():
        if state.get(k) != v:
            print(f"[train] checkpoint {f} was written for {what[k]}; starting fresh", file=sys.stderr)
            return None
    return state


def train(
    model,
    examples: list[Example],
    cfg: TrainConfig,
    *,
    pad_id: int,
    teacher=None,
    allowed_ids: list[int] | None = None,
    checkpoint_dir: str | Path | None = None,
    stop_after: int | None = None,
    log=None,
    inputs_key: str | dict | None = None,
):
    """Train ``model`` in place; return ``(model, info)``. ``model`` may be wrapped by peft.

    A checkpoint in ``checkpoint_dir`` is resumed only if it was written for the same
    settings (``cfg``), the same examples (hashed here) and the same ``inputs_key`` -- the
    caller's identification of what the examples do not show, above all the starting model
    (and the teacher): e.g. ``{"reference": <hash>, "teacher": <hash>}``.

    ``stop_after`` stops (as if killed) after that many optimiser steps -- used by tests.
    """
    import torch
    from tqdm import tqdm

    if cfg.mode not in MODES:
        raise SublimError(f"unknown training mode {cfg.mode!r}; expected one of {MODES}")
    if not examples:
        raise SublimError("no training examples: the input dataset is empty")
    if not (isinstance(cfg.pack, int) and cfg.pack >= 1):
        raise SublimError(f"pack must be a whole number of examples a row, at least 1; got {cfg.pack!r}")
    if cfg.mode.startswith("distill") and teacher is None:
        raise SublimError(f"mode {cfg.mode} needs a teacher model")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora["r"],
                lora_alpha=cfg.lora["alpha"],
                lora_dropout=cfg.lora.get("dropout", 0.0),
                target_modules=cfg.lora["target_modules"],
                task_type="CAUSAL_LM",
            ),
        )
    if cfg.gradient_checkpointing:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    device = next(model.parameters()).device
    if teacher is not None and next(teacher.parameters()).device != device:
        teacher.to(device)
    # on a GPU the forward passes run under bf16 autocast (LoRA bases are loaded in bf16,
    # adapters and full-fine-tuning master weights stay float32); on a CPU, float32 throughout
    # (no fp16 autocast: it would need a gradient scaler; GPUs without bf16 train in float32)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    gpu_attention(device)  # no cuDNN attention on CUDA (its per-shape plans cost more than the steps)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(examples)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = max(1, round(per_epoch * cfg.epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, total))
    allowed = torch.tensor(allowed_ids, device=device) if allowed_ids is not None else None
    if cfg.mode == "distill" and allowed is None:
        raise SublimError("restricted distillation needs the allowed token ids")

    step = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    resumed_from = None
    keys = {"key": cfg.key(), "data": data_key(examples, cfg.mode), "inputs": inputs_hash(inputs_key)}
    state = _load_checkpoint(ckpt, keys) if ckpt else None
    if state:
        missing = model.load_state_dict(state["model"], strict=not cfg.lora).missing_keys
        if cfg.lora and set(missing) & {n for n, p in model.named_parameters() if p.requires_grad}:
            raise SublimError(f"checkpoint {ckpt} lacks adapter weights; delete it to start over")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])
        random.setstate(_python_rng_from_plain(state["rng"]["python"]))
        step = resumed_from = state["step"]
        del state
        print(f"[train] resumed from step {step} of {total} ({ckpt})", file=sys.stderr)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    losses = []
    # batches are bucketed by prompt length, which is the same in every arm (the same prompts),
    # so a treatment and a neutral student see the same batches in the same order; plain
    # language modelling (no prompt) buckets by length
    lengths = [len(e.input_ids) if cfg.mode == "lm" else e.n_prompt for e in examples]
    batches, batches_epoch, checked = None, -1, cfg.pack <= 1
    n_tokens, t_start, step0 = 0, time.time(), step
    try:
        bar = tqdm(total=total, initial=step, desc=cfg.mode, file=sys.stderr, mininterval=5)
        while step < total:
            epoch, pos = divmod(step, per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch), epoch
            chunk = [examples[i] for i in batches[pos]]
            if not checked:  # packing must give each example the logits of its own padded row
                checked = check_packing(model, chunk, pad_id, cfg.pack)
                if checked and cfg.mode.startswith("distill"):
                    check_packing(teacher, chunk, pad_id, cfg.pack, teacher=True)
            batch = {"student": _batch(chunk, pad_id, teacher=False, device=device, pack=cfg.pack)}
            if cfg.mode.startswith("distill"):
                batch["teacher"] = _batch(chunk, pad_id, teacher=True, device=device, pack=cfg.pack)
            n_tokens += sum(len(e.input_ids) for e in chunk)
            with autocast:
                loss = _loss(cfg.mode, model, teacher, batch, allowed)
            opt.zero_grad(set_to_none=True)
            if batch["student"][2].numel():  # a batch whose every position is masked: no update
                loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            if step % 50 == 0 and log:
                log(f"step {step}/{total} loss {sum(losses[-50:]) / len(losses[-50:]):.4f}")
            interrupted = stop["signal"] is not None or (stop_after is not None and step >= stop_after)
            if ckpt and step < total and (step % cfg.checkpoint_every == 0 or interrupted):
                _save_checkpoint(ckpt, model, opt, sched, step, cfg, keys)
            if interrupted and step < total:
                raise Interrupted(f"training interrupted at step {step}/{total}; checkpoint in {ckpt}")
        bar.close()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - t_start
    model.eval()
    info = {
        "steps": total,
        "steps_per_epoch": per_epoch,
        "resumed_from_step": resumed_from,
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])) if losses else None,
        "n_examples": n,
        "throughput": throughput(model, n_tokens, seconds, step - step0, device),
    }
    return model, info


# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' datasheets, for the MFU figure.
GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
}


def gpu_peak_flops(name: str) -> float | None:
    for key, peak in GPU_PEAK_BF16.items():  # most specific names first
        if key in name:
            return peak
    return None


def throughput(model, n_tokens: int, seconds: float, steps: int, device) -> dict:
    """Tokens per second and model FLOP/s (6 x parameters x tokens, the PaLM convention,
    which counts the weight gradients a LoRA run skips), with MFU on a known GPU. An untied
    input embedding is a lookup, not a matmul, and is not counted (a tied one is the output
    head, which is)."""
    import torch

    n_params = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
    try:
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        if emb is not head:
            n_params -= emb.numel()
    except AttributeError:
        pass
    out = {
        "device": str(device),
        "steps_timed": steps,
        "tokens": n_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(n_tokens / seconds, 1) if seconds > 0 else None,
        "n_parameters": n_params,
        "model_flops_per_s": 6 * n_params * n_tokens / seconds if seconds > 0 else None,
    }
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        out["gpu"] = name
        peak = gpu_peak_flops(name)
        if peak and seconds > 0:
            out["mfu"] = round(out["model_flops_per_s"] / peak, 4)
    return out


def clear_checkpoint(checkpoint_dir: str | Path | None) -> None:
    if checkpoint_dir and Path(checkpoint_dir).exists():
        shutil.rmtree(checkpoint_dir)


def save_model(model, tokenizer, out: Path, *, merge: bool = True) -> None:
    """Save with safetensors. A LoRA model's adapter goes to ``adapter/``; with ``merge``
    the merged weights are written too, else only the adapter (and the tokenizer)."""
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(out / "adapter")
        if not merge:
            tokenizer.save_pretrained(out)
            return
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
