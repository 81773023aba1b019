"""Benchmark: the students' padded, length-bucketed batches against the same batches packed.

The speed issue names packing as a lever: the default's student batches carry about 17%
padding (bucketed by prompt length so that a treatment student and its twin see the same
batches; the completions differ in length). ``train.pack`` keeps every step's examples (the
same 32 per optimiser step: the same training within float rounding) and lays ``pack`` of
them end to end in each row (``training._batch``: positions restart, each example attends to
itself alone), so padding shrinks to the rows' ragged ends.

On real data from a finished run of the embedded default (a teacher's filtered data, the
reference seed 0 its students start from; ``--mode distill`` adds the teacher's restricted
KL): times an epoch's steps as ``training.train`` runs them (its batches and loss, clipping,
AdamW), padded and at each packing, with the tokens computed and their share of padding, after
the run's own check that packed logits equal padded ones. Prints both sides and the ratios in
one run, beside the single-thread float32 matmul rate measured in the same run.

    python benchmarks/packing.py RUN_DIR [--teacher owl_t0] [--mode distill] [--pack 1 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import json

    import torch
    from _roofline import matmul_rate

    from sublim import filtering, models, training
    from sublim.modalities import get_modality
    from sublim.steps import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a finished run of the embedded default (results/ inside)")
    ap.add_argument("--teacher", default="owl_t0")
    ap.add_argument("--modality", default="numbers")
    ap.add_argument("--steps", type=int, default=63, help="optimiser steps timed per side (a student's epoch: 63)")
    ap.add_argument("--mode", choices=["sft", "distill"], default="sft", help="distill: the teacher's restricted KL")
    ap.add_argument("--pack", type=int, nargs="+", default=[1, 2, 4, 8], help="examples a row (1: padded, first)")
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(1)

    res = a.run_dir / "results"
    model, tok, header = models.load(res / "reference" / "seed0")
    teacher, allowed, t_sp = None, None, None
    if a.mode == "distill":
        teacher, _, t_header = models.load(res / "animal" / "teacher" / a.teacher)
        t_sp = t_header.system_prompt
        allowed = torch.tensor(get_modality(a.modality).allowed_token_ids(tok))
    by_id = {r["id"]: r for r in read_jsonl(res / "animal" / a.modality / "filter" / f"{a.teacher}.jsonl")}
    common = json.loads((res / "animal" / a.modality / "select" / "prompt_ids.json").read_text())["ids"]
    rows = [by_id[i] for i in filtering.subsample(common, 2000, 0)]
    examples = training.completion_examples(tok, rows, header.system_prompt, teacher=teacher is not None,
                                            teacher_system_prompt=t_sp)  # fmt: skip
    batches = training.epoch_batches([e.n_prompt for e in examples], a.batch_size, 0, 0)[: a.steps]
    pad = tok.pad_token_id
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    chunk = [examples[i] for i in batches[0]]
    for p in a.pack:  # the run's own check: packed logits are the padded ones
        training.check_packing(model, chunk, pad, p)

    def prepare(b, p):
        chunk = [examples[i] for i in b]
        out = {"student": training._batch(chunk, pad, teacher=False, pack=p)}
        if teacher is not None:
            out["teacher"] = training._batch(chunk, pad, teacher=True, pack=p)
        return out

    def run(p):
        """An epoch's steps as training.train runs them (its batches, loss, clipping, AdamW)."""
        model.load_state_dict(state0)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
        prepared = [prepare(b, p) for b in batches]
        computed = sum(x["student"][0].numel() for x in prepared)
        for x in prepared[:3]:  # warm-up: the allocator, first calls
            training._loss(a.mode, model, teacher, x, allowed).backward()
        model.load_state_dict(state0)
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        for x in prepared:
            loss = training._loss(a.mode, model, teacher, x, allowed)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return time.perf_counter() - t0, computed, loss.item()

    real = sum(len(examples[i].input_ids) for b in batches for i in b)
    peak = matmul_rate()
    out = [(p, *run(p)) for p in a.pack]
    peak = max(peak, matmul_rate())
    n_params = sum(x.numel() for x in model.parameters())
    print(f"{a.teacher}'s {a.modality} data, {a.mode}, {len(batches)} steps of {a.batch_size} examples, "
          f"{real:,} real tokens; {n_params / 1e6:.2f}M parameters, one thread")  # fmt: skip
    print(f"matmul rate (float32 1024^3, best of before/after): {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'examples a row':<15} {'s':>7} {'tokens computed':>16} {'padding':>8} {'GFLOP/s (6PT real)':>19} "
          f"{'of 1024^3':>10} {'vs pack 1':>10} {'last loss':>10}")  # fmt: skip
    base = out[0][1]
    flops = 6 * n_params * real
    for p, sec, computed, last in out:
        print(f"{p:<15} {sec:>7.2f} {computed:>16,} {1 - real / computed:>8.1%} {flops / sec / 1e9:>19.1f} "
              f"{flops / sec / peak:>10.0%} {base / sec:>9.2f}x {last:>10.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
