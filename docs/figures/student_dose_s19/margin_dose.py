"""Exploratory, after the student-dose run was read (not declared): the logit margin's change
with the students' training, per (target, teacher seed) pair, 469 steps minus 63 on the same
teachers (paired t, scipy).

    python docs/figures/student_dose_s19/margin_dose.py
"""

from pathlib import Path

import pandas as pd
from scipy import stats

from sublim import report

HERE = Path(__file__).parent
long = pd.read_csv(HERE / "results.csv")
short = pd.read_csv(HERE.parent / "replay1600_s19" / "results.csv")


def pairs(res):
    return report._pair_diffs(res, "plain", "distill", "margin").set_index(["target", "replicate"])["diff"]


a, b = pairs(long), pairs(short)
d = a - b
t = stats.ttest_1samp(d, 0.0)
lo, hi = t.confidence_interval(0.95)
print(f"margin, 469 steps: {a.mean():+.4f} ({(a > 0).sum()} of {len(a)} pairs > 0); 63 steps: {b.mean():+.4f} "
      f"({(b > 0).sum()} of {len(b)}); difference {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}], two-sided p {t.pvalue:.2g}")  # fmt: skip
