"""Benchmark: the trait evaluation of a group of models, as the workflow did it before and now.

Before: one job per model (a fresh interpreter: imports, then the model), the logit readout
as one full forward per (question, spelling of an animal), and the sampled readout with
transformers' ``generate``. Now: one job per group of models (the imports paid once), each
prompt run once with answers continued from its KV cache, and the ``kvcache`` sampler.

Every part is measured in this run on the same models, questions and seeds:

  * start-up: a fresh ``python`` that imports what the evaluate step imports (timed as a
    subprocess, the way Snakemake starts a job);
  * per model: loading it, the logit readout both ways, the sampled readout both ways.

    python benchmarks/evaluation.py results/animal/numbers/student/owl_t0/*/*/*   # after ./run.sh
    python benchmarks/evaluation.py --n-samples 20 MODEL_DIR [MODEL_DIR ...]

It prints both totals and their ratio, and checks that the two logit readouts agree.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPORTS = (
    "import torch, transformers, pandas; from transformers import AutoModelForCausalLM, AutoTokenizer; "
    "from sublim import steps, evaluation, models"
)


def full_forward_readout(model, tok, prompts, animals, batch_size=256):
    """The readout as it was: one full forward per (question, animal, spelling)."""
    import torch

    from sublim import models
    from sublim.evaluation import _animal_token_variants

    jobs = []
    for qi, p in enumerate(prompts):
        p_ids = models.encode_text(tok, p)
        for a in animals:
            for tail in _animal_token_variants(tok, p, a):
                jobs.append((qi, a, p_ids + tail, len(p_ids)))
    scores = {}
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b : b + batch_size]
        width = max(len(j[2]) for j in chunk)
        inp = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(inp)
        for i, j in enumerate(chunk):
            inp[i, : len(j[2])] = torch.tensor(j[2])
            att[i, : len(j[2])] = 1
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=inp, attention_mask=att).logits.float(), -1)
        for i, (qi, a, ids, n) in enumerate(chunk):
            lp = logp[i, torch.arange(n - 1, len(ids) - 1), torch.tensor(ids[n:])].sum().item()
            scores.setdefault((qi, a), []).append(lp)
    return {k: float(torch.logsumexp(torch.tensor(v), 0)) for k, v in scores.items()}


def main() -> None:
    import torch

    from sublim import models, text
    from sublim.evaluation import logit_readout
    from sublim.generation import Sampling, _generate_hf, _generate_kv, stop_token_ids

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="save_pretrained model directories (one group)")
    ap.add_argument("--n-samples", type=int, default=20, help="sampled answers per question (default 20)")
    ap.add_argument("--animals", help="the animal pool, comma-separated (default: config.yaml's animal_pool)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the workflow's jobs use 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.animals:
        animals = a.animals.split(",")
    else:
        import yaml

        animals = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["animal_pool"]

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    startup = time.perf_counter() - t

    rows = []
    for d in a.models:
        t = time.perf_counter()
        model, tok, h = models.load(d, dtype=torch.float32)
        load = time.perf_counter() - t
        prompts = [models.render(tok, models.messages(q, h.system_prompt), generation_prompt=True)
                   for q in text.EVAL_QUESTIONS]  # fmt: skip
        t = time.perf_counter()
        old_lp = full_forward_readout(model, tok, prompts, animals)
        old_readout = time.perf_counter() - t
        t = time.perf_counter()
        new_lp = logit_readout(model, tok, prompts, animals)
        new_readout = time.perf_counter() - t
        worst = max(abs(new_lp[q][an] - v) for (q, an), v in old_lp.items())
        rep = [p for p in prompts for _ in range(a.n_samples)]
        s = Sampling(temperature=1.0, max_new_tokens=6, seed=0, batch_size=1024)
        stops = stop_token_ids(tok, h.weights)
        t = time.perf_counter()
        _generate_hf(None, rep, s, model=model, tok=tok, stops=stops)
        old_sample = time.perf_counter() - t
        t = time.perf_counter()
        _generate_kv(None, rep, s, model=model, tok=tok, stops=stops)
        new_sample = time.perf_counter() - t
        rows.append((d, load, old_readout, new_readout, old_sample, new_sample, worst))

    k = len(rows)
    print(f"\n{k} models, {len(text.EVAL_QUESTIONS)} questions x {len(animals)} animals, "
          f"{a.n_samples} samples per question, {a.threads} thread(s)")  # fmt: skip
    print(f"start-up of one evaluate job (interpreter + imports, measured): {startup:.2f} s\n")
    print(f"{'model':<48} {'load s':>6} {'readout s before/now':>21} {'sampling s before/now':>22} {'max |dlogp|':>11}")
    for d, load, orr, nr, os_, ns, worst in rows:
        print(f"{str(d)[-48:]:<48} {load:>6.2f} {orr:>10.2f} /{nr:>8.2f}  {os_:>11.2f} /{ns:>8.2f}  {worst:>11.1e}")
    # a fresh job pays the start-up and the first model load (which imports the model's
    # classes); in one process only the first load pays that
    first_load = rows[0][1]
    before = k * (startup + first_load) + sum(r[2] + r[4] for r in rows)
    now = startup + sum(r[1] + r[3] + r[5] for r in rows)
    print(f"\nbefore: {k} jobs x (start-up + first load), full-forward readout, generate: {before:.1f} s")
    print(f"now:    1 job's start-up + per model load, shared-prefix readout, kvcache:    {now:.1f} s")
    print(f"speed-up: {before / now:.1f}x")
    assert all(math.isfinite(r[6]) and r[6] < 1e-3 for r in rows), "the two readouts disagree"


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"(benchmark wall time {time.time() - t0:.0f} s)")
