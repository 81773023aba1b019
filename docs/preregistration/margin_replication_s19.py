"""The declared analysis of docs/preregistration/margin_replication_s19.md, written before the
run's teachers existed.

    python docs/preregistration/margin_replication_s19.py RUN_DIR/reports/animal_numbers
"""

import sys
from pathlib import Path

import pandas as pd

from sublim import report

COLS = ["contrast", "mode", "metric", "estimate", "ci_lo", "ci_hi", "p_one_sided", "p_two_sided",
        "p_holm_one_sided", "p_holm_two_sided", "p_perm_one_sided", "p_perm_two_sided", "n_units",
        "n_models", "verdict"]  # fmt: skip


def main(reports: Path) -> None:
    pd.set_option("display.width", 220)
    st = pd.read_csv(reports / "stats.csv")
    st = st[st["variant"] == "plain"]
    print("the workflow's tests (plain variant; Holm over its testable rows):")
    print(st[COLS].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    h = st[(st["contrast"] == "neutral") & (st["mode"] == "distill") & (st["metric"] == "margin")]
    assert len(h) == 1, h
    h = h.iloc[0]
    print(f"\nPRIMARY (neutral, distill, logit margin): {h['estimate']:+.5f} [{h['ci_lo']:+.5f}, {h['ci_hi']:+.5f}], "
          f"{h['n_units']} pairs ({h['n_models']} models); one-sided p {h['p_one_sided']:.3g}, two-sided "
          f"{h['p_two_sided']:.3g}; Holm {h['p_holm_one_sided']:.3g} / {h['p_holm_two_sided']:.3g}; "
          f"sign flips {h['p_perm_one_sided']:.3g} / {h['p_perm_two_sided']:.3g}; "
          f"{'HOLDS' if h['p_holm_one_sided'] < 0.05 else 'does not hold'}")  # fmt: skip
    res = pd.read_csv(reports / "results.csv")
    m = report._pair_diffs(res, "plain", "distill", "margin").sort_values(["target", "replicate"])
    print(
        "\nper-pair margin differences: "
        + ", ".join(f"{r.target} {r.replicate}: {r.diff:+.4f}" for r in m.itertuples())
    )
    print(f"pairs toward the target: {(m['diff'] > 0).sum()} of {len(m)}")
    print("\ndescriptive: the target against the other animals (P, pair means)")
    print(report.away_profile(res, "plain", "neutral", "distill"))
    t = res[(res["role"] == "teacher") & (res["variant"] == "plain") & (res["animal"] == res["target"])]
    print("\nteachers' P(own target animal):")
    print(t.groupby(["arm", "target"])["p"].agg(["mean", "min", "max", "count"]).to_string())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
