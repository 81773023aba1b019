"""Benchmark: one training step of the tiny reference model against its own matmul floor.

Why the embedded default's training steps run at 30-60% of the matmul rate, measured: on
the default's 128-wide, 4-layer Llama, a training step (forward, backward, AdamW, as
``training.train`` runs it) is timed beside

  * the **matmul floor**: the same step's matrix products alone (every linear layer's forward,
    its input gradient and its weight gradient, the output head at the loss positions), at
    the same shapes, timed back to back: what the step would cost if nothing else ran;
  * the single-thread float32 ``torch.matmul`` rate on 1024 x 1024 (the profile's ceiling);
  * optionally (``--compile``) the same step under ``torch.compile`` (inductor), which fuses
    the elementwise work (RMSNorm, rotary, SiLU, residual adds), with its compile seconds;
  * optionally (``--levers``) the levers measured and not adopted: the forward filling a KV
    cache it never reads (as training did before session 18), fused AdamW, bfloat16 weights
    (this CPU's AMX units: the bf16 matmul rate is printed beside), compiled bf16 with
    ``--compile``.

Prints each as milliseconds per step, model FLOP/s (6 x parameters x tokens) and the share of
the 1024^3 rate, and the ratios. One thread (the workflow's jobs run one thread each, two at
a time on two cores).

    python benchmarks/training_step.py                       # the default's shape, sft-like batches
    python benchmarks/training_step.py --batch-size 32 --prompt 37 --response 13 --compile
    python benchmarks/training_step.py --compile --levers   # session 18's levers, side by side
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch
    import torch.nn.functional as F
    from _roofline import matmul_rate
    from transformers import LlamaConfig, LlamaForCausalLM

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2300, help="the default's word-level vocabulary is about 2,300")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=37, help="prompt tokens (the number prompts average about 37)")
    ap.add_argument("--response", type=int, default=13, help="completion tokens with the loss")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    ap.add_argument(
        "--levers",
        action="store_true",
        help="also: the KV cache filled, fused AdamW, bf16 weights (and compiled bf16 with --compile)",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=256, tie_word_embeddings=True)  # fmt: skip
    b, t, r = a.batch_size, a.prompt + a.response, a.response
    g = torch.Generator().manual_seed(0)
    inp = torch.randint(0, a.vocab, (b, t), generator=g)
    att = torch.ones(b, t, dtype=torch.long)
    rows = torch.arange(b).repeat_interleave(r)
    cols = torch.arange(t - r - 1, t - 1).repeat(b)

    def make(compiled: bool, *, dtype=torch.float32, fused: bool = False, use_cache: bool = False):
        torch.manual_seed(0)
        m = LlamaForCausalLM(cfg).to(dtype)
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, **({"fused": True} if fused else {}))
        decoder = torch.compile(m.model, dynamic=True) if compiled else m.model
        params = list(m.parameters())

        def step():
            # training.train's forward fills no KV cache (use_cache=False); before session 18 it did
            h = decoder(input_ids=inp, attention_mask=att, use_cache=use_cache).last_hidden_state[rows, cols]
            loss = F.cross_entropy(m.lm_head(h).float(), inp[rows, cols + 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss.item()

        n_params = sum(p.numel() for p in m.parameters())
        return step, n_params

    def timed(step, n):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        return (time.perf_counter() - t0) / n

    # the matmul floor: every product of the step at its own shape (x: [tokens, in], W: [out, in])
    n_tok, hd, it = b * t, a.hidden, a.intermediate
    linears = [(hd, 3 * hd), (hd, hd), (hd, 2 * it), (it, hd)]  # q|k|v, o, gate|up, down (per layer)
    mats = []
    for fan_in, fan_out in linears:
        x, w, dy = torch.randn(n_tok, fan_in), torch.randn(fan_out, fan_in), torch.randn(n_tok, fan_out)
        mats += [(x, w.t()), (dy, w), (dy.t().contiguous(), x)] * a.layers  # forward, input grad, weight grad
    hx, hw, hdy = torch.randn(b * r, hd), torch.randn(a.vocab, hd), torch.randn(b * r, a.vocab)
    mats += [(hx, hw.t()), (hdy, hw), (hdy.t().contiguous(), hx)]

    def floor_step():
        for p, q in mats:
            p @ q

    peak = matmul_rate()
    results = []
    step, n_params = make(False)
    for _ in range(3):
        step()
    results.append(("eager step", timed(step, a.steps), 0.0))
    for _ in range(3):
        floor_step()
    results.append(("matmul floor", timed(floor_step, a.steps), 0.0))
    if a.levers:  # the levers measured and not adopted (session 18), on the same batch
        for name, kw in [("KV cache filled", {"use_cache": True}), ("fused AdamW", {"fused": True}),
                         ("bf16 weights", {"dtype": torch.bfloat16})]:  # fmt: skip
            step_l, _ = make(False, **kw)
            for _ in range(3):
                step_l()
            results.append((name, timed(step_l, a.steps), 0.0))
    compiled = [("compiled step", {})] + ([("compiled bf16", {"dtype": torch.bfloat16})] if a.levers else [])
    for name, kw in compiled if a.compile else []:
        step_c, _ = make(True, **kw)
        t0 = time.perf_counter()
        step_c()
        compile_s = time.perf_counter() - t0
        for _ in range(2):
            step_c()
        results.append((name, timed(step_c, a.steps), compile_s))
    peak_after = matmul_rate()
    peak = max(peak, peak_after)
    flops = 6 * n_params * b * t
    print(f"model: {a.layers} layers x {a.hidden} wide, {n_params / 1e6:.2f}M parameters (tied head), "
          f"batch {b} x {t} tokens ({r} with the loss), one thread")  # fmt: skip
    print(f"matmul rate (float32 1024^3, best of before/after): {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'':<14} {'ms/step':>8} {'GFLOP/s (6PT)':>14} {'of 1024^3 rate':>15} {'compile s':>10}")
    for name, sec, comp in results:
        print(f"{name:<14} {sec * 1e3:>8.1f} {flops / sec / 1e9:>14.1f} {flops / sec / peak:>15.0%} "
              f"{(f'{comp:.1f}' if comp else '-'):>10}")  # fmt: skip
    eager, floor = results[0][1], results[1][1]
    print(f"\neager step / matmul floor: {eager / floor:.2f}x (the rest: elementwise work, attention, optimiser)")
    for name, sec, _ in results[2:]:
        print(f"eager / {name}: {eager / sec:.2f}x")
    if a.levers:
        x = torch.randn(1024, 1024).bfloat16()
        t0 = time.perf_counter()
        for _ in range(10):
            x @ x
        bf16_rate = 2 * 1024**3 * 10 / (time.perf_counter() - t0)
        print(f"bf16 matmul rate (1024^3, one thread): {bf16_rate / 1e9:.0f} GFLOP/s, float32's {peak / 1e9:.0f}")


if __name__ == "__main__":
    main()
