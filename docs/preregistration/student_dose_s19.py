"""The declared analysis of docs/preregistration/student_dose_s19.md, written before the run's
students existed.

    python docs/preregistration/student_dose_s19.py RUN_DIR/reports/animal_numbers \
        docs/figures/replay1600_s19/results.csv

1. The workflow's own stats.csv, every row (its headline: neutral, distill, P(target)).
2. The student-dose contrast: per (target, teacher seed) pair, this run's `distill`
   treatment-minus-neutral P(target) minus the same pair's in the replay-1,600 run (the same
   teachers, 63 steps); paired t (scipy), one-sided "greater", two-sided beside.
3. Descriptive: the target against the other animals (report.away_profile).
"""

import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from sublim import report

COLS = ["contrast", "mode", "metric", "estimate", "ci_lo", "ci_hi", "p_one_sided", "p_two_sided",
        "p_holm_one_sided", "p_holm_two_sided", "p_perm_one_sided", "p_perm_two_sided", "n_units",
        "n_models", "verdict"]  # fmt: skip


def main(reports: Path, earlier: Path) -> None:
    pd.set_option("display.width", 220)
    st = pd.read_csv(reports / "stats.csv")
    st = st[st["variant"] == "plain"]
    print("1. the workflow's tests (plain variant; Holm over its testable rows):")
    print(st[COLS].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    h = st[st["headline"].astype(bool) & (st["mode"] == "distill")].iloc[0]
    print(f"\nPRIMARY (neutral, distill, P(target)): {h['estimate']:+.5f} [{h['ci_lo']:+.5f}, {h['ci_hi']:+.5f}], "
          f"{h['n_units']} pairs ({h['n_models']} models); one-sided p {h['p_one_sided']:.3g}, two-sided "
          f"{h['p_two_sided']:.3g}; Holm {h['p_holm_one_sided']:.3g} / {h['p_holm_two_sided']:.3g}; "
          f"sign flips {h['p_perm_one_sided']:.3g} / {h['p_perm_two_sided']:.3g}; "
          f"{'HOLDS' if h['p_holm_one_sided'] < 0.05 else 'does not hold'}")  # fmt: skip

    res = pd.read_csv(reports / "results.csv")
    old = pd.read_csv(earlier)

    def pairs(r):
        return report._pair_diffs(r, "plain", "distill", "p").set_index(["target", "replicate"])["diff"]

    both = pd.concat({"long": pairs(res), "short": pairs(old)}, axis=1)
    if both.isna().any().any():
        sys.exit(f"error: the two runs do not have the same pairs:\n{both}")
    d = both["long"] - both["short"]
    print("\n2. the student-dose contrast (469 steps minus 63, per (target, teacher seed)):")
    print(both.assign(dose_diff=d).to_string(float_format=lambda x: f"{x:+.5f}"))
    t = stats.ttest_1samp(d, 0.0)
    lo, hi = t.confidence_interval(0.95)
    one = stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
    print(f"dose contrast {d.mean():+.5f} [{lo:+.5f}, {hi:+.5f}], {len(d)} pairs; one-sided (greater) p {one:.3g}, "
          f"two-sided {t.pvalue:.3g}")  # fmt: skip
    print("\n3. descriptive: the target against the other animals (trait student minus twin's, pair means)")
    print(report.away_profile(res, "plain", "neutral", "distill"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
