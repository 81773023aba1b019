"""The tests declared in nonspecific_shift_s17.md, on a run's reports/<trait>_<modality>/results.csv.

    python docs/preregistration/nonspecific_shift_s17.py RUN/reports/animal_numbers/results.csv [--out CSV]

Unit: a twin pair (a trait teacher and its neutral twin, one same-init student each per mode).
Per pair and mode, with d(a) = P_trait-student(a) - P_neutral-student(a) for every animal a of
the readout (the plain variant's logit readout, mean over the questions):

  d_target           d(target)                               (the config's headline contrast)
  others             mean of d(a) over the other animals
  name_mass          sum of d(a) over all animals            (H1)
  target_vs_others   d(target) - others                      (H2)
  log_target_vs_others  log-ratio of the target minus the others' mean log-ratio (H2b, amendment)

Each is tested against 0 over the pairs: paired t (scipy.stats.ttest_1samp on the per-pair
values; one-sided toward the target for `d_target` and `target_vs_others`, toward less mass for
`name_mass`) with the exact sign-flip permutation beside (scipy.stats.permutation_test), and
Holm over the declared family (statsmodels), one- and two-sided.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

# (quantity, mode, the direction the one-sided p looks in: +1 greater, -1 less)
FAMILY = [
    ("name_mass", "distill", -1),  # H1, primary
    ("target_vs_others", "distill", +1),  # H2
    ("d_target", "distill", +1),  # H3, the config's headline
    ("log_target_vs_others", "distill", +1),  # H2b (amendment, before any student existed)
    ("name_mass", "sft", -1),  # secondary
    ("target_vs_others", "sft", +1),
    ("d_target", "sft", +1),
    ("log_target_vs_others", "sft", +1),
]


N_ANIMALS = 20  # the default's readout pool


def pair_table(results: pd.DataFrame) -> pd.DataFrame:
    d = results[
        (results.role == "student") & (results.variant == "plain") & (results.arm.isin(["treatment", "neutral"]))
    ]
    rows = []
    for (mode, target, rep), g in d.groupby(["mode", "target", "replicate"]):
        arms = {a: x.groupby("animal").p.mean() for a, x in g.groupby("arm")}
        n_models = {a: x.model_id.nunique() for a, x in g.groupby("arm")}
        if set(arms) != {"treatment", "neutral"} or n_models != {"treatment": 1, "neutral": 1}:
            sys.exit(f"error: pair {target} t{rep} {mode} needs one treatment and one neutral student, has {n_models}")
        if len(arms["treatment"]) != N_ANIMALS or set(arms["treatment"].index) != set(arms["neutral"].index):
            sys.exit(f"error: pair {target} t{rep} {mode} lacks some of the {N_ANIMALS} animals in an arm")
        diff = arms["treatment"] - arms["neutral"]
        logr = np.log(arms["treatment"]) - np.log(arms["neutral"])
        others = diff.drop(target)
        rows.append(
            {
                "mode": mode,
                "target": target,
                "replicate": int(rep),
                "d_target": diff[target],
                "others": others.mean(),
                "others_below_zero": int((others < 0).sum()),
                "n_others": len(others),
                "name_mass": diff.sum(),
                "target_vs_others": diff[target] - others.mean(),
                "log_target_vs_others": logr[target] - logr.drop(target).mean(),
            }
        )
    return pd.DataFrame(rows)


def test(values: np.ndarray, direction: int) -> dict:
    t = stats.ttest_1samp(values, 0.0)
    one = stats.ttest_1samp(values, 0.0, alternative="greater" if direction > 0 else "less").pvalue
    lo, hi = t.confidence_interval(0.95)
    perm = {}
    for alt in ("two-sided", "greater" if direction > 0 else "less"):
        r = stats.permutation_test(
            (values,), np.mean, permutation_type="samples", alternative=alt, n_resamples=np.inf
        )  # one sample: exact sign flips
        perm[alt] = r.pvalue
    return {
        "estimate": values.mean(),
        "ci_lo": lo,
        "ci_hi": hi,
        "p_one_sided": one,
        "p_two_sided": t.pvalue,
        "p_perm_one_sided": perm["greater" if direction > 0 else "less"],
        "p_perm_two_sided": perm["two-sided"],
        "n_pairs": len(values),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="reports/<trait>_<modality>/results.csv of a finished run")
    ap.add_argument("--out", help="write the tests here (CSV)")
    a = ap.parse_args()
    pairs = pair_table(pd.read_csv(a.results))
    pd.set_option("display.width", 200)
    print(pairs.round(6).to_string(index=False))
    rows = []
    for quantity, mode, direction in FAMILY:
        v = pairs.loc[pairs["mode"] == mode, quantity].to_numpy(float)
        rows.append({"quantity": quantity, "mode": mode, "one_sided_toward": "+" if direction > 0 else "-",
                     **test(v, direction)})  # fmt: skip
    out = pd.DataFrame(rows)
    out["p_holm_one_sided"] = multipletests(out.p_one_sided, method="holm")[1]
    out["p_holm_two_sided"] = multipletests(out.p_two_sided, method="holm")[1]
    print()
    print(out.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if a.out:
        out.to_csv(a.out, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
