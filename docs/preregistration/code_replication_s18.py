"""The declared analysis of docs/preregistration/code_replication_s18.md, written before the
run's students existed: the report's headline row (paired t over the twin pairs, one- and
two-sided, Holm, exact sign flips), the per-pair differences, and the declared secondary:
Stouffer's combination of the three runs with independent teacher pairs.

    python docs/preregistration/code_replication_s18.py RUN_DIR/reports/animal_code
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import combine_pvalues

from sublim import report

# the earlier runs' headline one-sided p and pairs, as README reports them
EARLIER = {"session 14 (teacher seeds 0-1)": (0.094, 6), "session 15 (teacher seeds 2-3)": (0.15, 6)}


def main(reports: Path) -> None:
    stats = pd.read_csv(reports / "stats.csv")
    res = pd.read_csv(reports / "results.csv")
    h = stats[(stats["variant"] == "plain") & stats["headline"].astype(bool) & (stats["mode"] == "distill")]
    assert len(h) == 1, h
    h = h.iloc[0]
    print(f"headline (distill, treatment - neutral, P(target)): {h['estimate']:+.5f} "
          f"[{h['ci_lo']:+.5f}, {h['ci_hi']:+.5f}], {h['n_units']} pairs ({h['n_models']} models); "
          f"one-sided p {h['p_one_sided']:.3g}, two-sided {h['p_two_sided']:.3g}; "
          f"Holm {h['p_holm_one_sided']:.3g} / {h['p_holm_two_sided']:.3g}; "
          f"sign flips {h['p_perm_one_sided']:.3g} / {h['p_perm_two_sided']:.3g}; {h['verdict']}")  # fmt: skip
    pairs = report._pair_diffs(res, "plain", "distill", "p").sort_values(["target", "replicate"])
    print("per pair (target, teacher seed): " + ", ".join(
        f"{r.target} {r.replicate}: {r.diff:+.5f}" for r in pairs.itertuples()))  # fmt: skip
    print(f"pairs toward the target: {(pairs['diff'] > 0).sum()} of {len(pairs)}")
    ps = [p for p, _ in EARLIER.values()] + [float(h["p_one_sided"])]
    ns = [n for _, n in EARLIER.values()] + [int(h["n_units"])]
    z, p = combine_pvalues(ps, method="stouffer", weights=np.sqrt(ns))
    print(f"Stouffer over the three runs (weights sqrt(pairs) = {', '.join(f'{np.sqrt(n):.2f}' for n in ns)}): "
          f"z = {z:.2f}, one-sided p {p:.3g}")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
