"""Diagnostic: how far apart a trait teacher and its neutral twin are where students learn.

For each pair of models given, the mean per-token KL between their next-token distributions
restricted to the number tokens (what ``distill`` matches), over the positions of filtered
number responses (prompt + response rendered as the students see them). A student can only
inherit what differs between the teachers' number distributions; if the trait teacher is no
further from its twin than two twins are from each other, there is little to transfer.

    python benchmarks/teacher_divergence.py --data results/animal/numbers/filter/owl_t0.jsonl \\
        --pair results/animal/teacher/owl_t0 results/animal/teacher/neutral_owl_t0 \\
        --pair results/animal/teacher/neutral_owl_t0 results/animal/teacher/neutral_owl_t1 [--n 300]
"""

from __future__ import annotations

import argparse
import json


def restricted_logprobs(model, tok, rows, system_prompt, allowed):
    import torch

    from sublim import models

    out = []
    for r in rows:
        p, c = models.encode_completion(tok, r["prompt"], r["response"], system_prompt)
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(p) - 1 : len(p) + len(c) - 1].float()
        out.append(torch.log_softmax(logits[:, allowed], -1))
    return out


def main() -> None:
    import torch

    from sublim import models
    from sublim.modalities import numbers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a filtered jsonl (prompt, response)")
    ap.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [json.loads(line) for line in open(a.data)][: a.n]
    cache = {}

    def lp(path):
        if path not in cache:
            m, tok, h = models.load(path)
            allowed = torch.tensor(numbers.allowed_token_ids(tok))
            cache[path] = restricted_logprobs(m, tok, rows, h.system_prompt, allowed)
        return cache[path]

    print(f"{'A':<45} {'B':<45} {'KL(A||B) nats/token':>20}")
    for x, y in a.pair:
        la, lb = lp(x), lp(y)
        kl = torch.cat([(p.exp() * (p - q)).sum(-1) for p, q in zip(la, lb)])
        print(f"{x:<45} {y:<45} {kl.mean().item():>20.5f}")


if __name__ == "__main__":
    main()
