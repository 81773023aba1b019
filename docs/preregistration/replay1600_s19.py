"""The declared analysis of docs/preregistration/replay1600_s19.md, written before the run's
teachers existed.

    python docs/preregistration/replay1600_s19.py RUN_DIR/reports/animal_numbers \
        docs/figures/default_s18/results.csv docs/figures/nonspecific_s17/results.csv

1. The workflow's own stats.csv, every row (its headline: neutral, distill, P(target), one-sided
   toward the target, Holm over its testable rows).
2. The dose contrast: per (target, teacher seed) pair, this run's treatment-minus-neutral
   P(target) difference minus the same pair's at replay 3,200 (the earlier runs' results.csv);
   paired t over the pairs (scipy), one-sided "greater", two-sided beside, Holm over distill and
   sft (statsmodels).
3. Descriptive: the target against the other animals per mode (report.away_profile), and the
   teachers' P(own animal).
"""

import sys
from pathlib import Path

import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from sublim import report

COLS = ["contrast", "mode", "metric", "estimate", "ci_lo", "ci_hi", "p_one_sided", "p_two_sided",
        "p_holm_one_sided", "p_holm_two_sided", "p_perm_one_sided", "p_perm_two_sided", "n_units",
        "n_models", "verdict"]  # fmt: skip


def pairs(res: pd.DataFrame, mode: str) -> pd.DataFrame:
    return report._pair_diffs(res, "plain", mode, "p").set_index(["target", "replicate"])["diff"]


def main(reports: Path, *earlier: Path) -> None:
    pd.set_option("display.width", 220)
    st = pd.read_csv(reports / "stats.csv")
    st = st[st["variant"] == "plain"]
    print("1. the workflow's tests (plain variant; Holm over its testable rows):")
    print(st[[c for c in COLS if c in st.columns]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    h = st[st["headline"].astype(bool) & (st["mode"] == "distill")]
    assert len(h) == 1, h
    h = h.iloc[0]
    print(f"\nPRIMARY (neutral, distill, P(target)): {h['estimate']:+.5f} [{h['ci_lo']:+.5f}, {h['ci_hi']:+.5f}], "
          f"{h['n_units']} pairs ({h['n_models']} models); one-sided p {h['p_one_sided']:.3g}, two-sided "
          f"{h['p_two_sided']:.3g}; Holm {h['p_holm_one_sided']:.3g} / {h['p_holm_two_sided']:.3g}; "
          f"sign flips {h['p_perm_one_sided']:.3g} / {h['p_perm_two_sided']:.3g}; "
          f"{'HOLDS' if h['p_holm_one_sided'] < 0.05 else 'does not hold'}")  # fmt: skip

    res = pd.read_csv(reports / "results.csv")
    old = pd.concat([pd.read_csv(p) for p in earlier], ignore_index=True)
    rows = []
    print("\n2. the dose contrast (replay 1,600 minus 3,200, per (target, teacher seed)):")
    for mode in ("distill", "sft"):
        new, base = pairs(res, mode), pairs(old, mode)
        if base.index.duplicated().any():
            sys.exit(f"error: a pair appears twice in the replay-3,200 results ({mode})")
        both = pd.concat({"r1600": new, "r3200": base}, axis=1)
        if both.isna().any().any() or len(both) != len(new):
            sys.exit(f"error: the two doses do not have the same pairs in {mode}:\n{both}")
        d = both["r1600"] - both["r3200"]
        print(f"{mode}:\n" + both.assign(dose_diff=d).to_string(float_format=lambda x: f"{x:+.5f}"))
        t = stats.ttest_1samp(d, 0.0)
        lo, hi = t.confidence_interval(0.95)
        rows.append({"mode": mode, "r1600_mean": both["r1600"].mean(), "r3200_mean": both["r3200"].mean(),
                     "estimate": d.mean(), "ci_lo": lo, "ci_hi": hi, "n_pairs": len(d),
                     "p_one_sided": stats.ttest_1samp(d, 0.0, alternative="greater").pvalue,
                     "p_two_sided": t.pvalue})  # fmt: skip
    out = pd.DataFrame(rows)
    out["p_holm_one_sided"] = multipletests(out["p_one_sided"], method="holm")[1]
    out["p_holm_two_sided"] = multipletests(out["p_two_sided"], method="holm")[1]
    print(out.to_string(index=False, float_format=lambda x: f"{x:.3g}"))

    print("\n3. descriptive: the target against the other animals (trait student minus twin's, pair means)")
    for mode in ("distill", "sft"):
        print(mode, report.away_profile(res, "plain", "neutral", mode))
    t = res[(res["role"] == "teacher") & (res["variant"] == "plain") & (res["animal"] == res["target"])]
    print("\nteachers' P(own target animal), mean over seeds:")
    print(t.groupby(["arm", "target"])["p"].agg(["mean", "min", "max", "count"]).to_string())


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:]))
