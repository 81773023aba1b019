"""The declared analysis of docs/preregistration/crossinit_long_s19.md, written before the
run's cross-initialised students existed.

    python docs/preregistration/crossinit_long_s19.py RUN_DIR/reports/animal_numbers
"""

import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from sublim import report

COLS = ["contrast", "mode", "metric", "estimate", "ci_lo", "ci_hi", "p_one_sided", "p_two_sided",
        "p_holm_one_sided", "p_holm_two_sided", "n_units", "n_models", "verdict"]  # fmt: skip


def main(reports: Path) -> None:
    pd.set_option("display.width", 220)
    st = pd.read_csv(reports / "stats.csv")
    st = st[st["variant"] == "plain"]
    print(st[COLS].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    h = st[(st["contrast"] == "cross_init_neutral") & (st["mode"] == "distill") & (st["metric"] == "margin")]
    assert len(h) == 1, h
    h = h.iloc[0]
    print(f"\nPRIMARY (cross_init_neutral, distill, margin): {h['estimate']:+.5f} [{h['ci_lo']:+.5f}, "
          f"{h['ci_hi']:+.5f}], {h['n_units']} pairs; one-sided p {h['p_one_sided']:.3g}, two-sided "
          f"{h['p_two_sided']:.3g}; Holm {h['p_holm_one_sided']:.3g} / {h['p_holm_two_sided']:.3g}; "
          f"{'HOLDS' if h['p_holm_one_sided'] < 0.05 else 'does not hold'}")  # fmt: skip
    res = pd.read_csv(reports / "results.csv")
    arms = {a: res[res["arm"] == a] for a in ("treatment", "neutral", "cross_init", "cross_init_neutral")}

    def pairs(t, c):
        both = pd.concat([arms[t], arms[c]])
        both = both.assign(arm=both["arm"].map({t: "treatment", c: "neutral"}))
        return report._pair_diffs(both, "plain", "distill", "margin").set_index(["target", "replicate"])["diff"]

    same, cross = pairs("treatment", "neutral"), pairs("cross_init", "cross_init_neutral")
    d = (same - cross).dropna()
    t = stats.ttest_1samp(d, 0.0)
    lo, hi = t.confidence_interval(0.95)
    one = stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
    print(f"\nSECONDARY same-init minus cross-init margin difference: {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}], "
          f"{len(d)} pairs; one-sided (greater) {one:.3g}, two-sided {t.pvalue:.3g}")  # fmt: skip
    print("per pair (same, cross):", ", ".join(f"{k[0]} {k[1]}: {same[k]:+.4f}/{cross[k]:+.4f}" for k in d.index))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
