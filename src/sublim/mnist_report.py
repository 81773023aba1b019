"""Summaries and the figure for the MNIST auxiliary-logit control."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import t_interval

LABELS = {
    "reference": "reference (untrained)",
    "teacher": "teacher (class logits)",
    "aux_same": "student: aux only, same init",
    "aux_cross": "student: aux only, cross init",
    "all_same": "student: all logits, same init",
    "aux_sigma": "student: aux only, perturbed init",
}


def summary(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rows = []
    for (cond, sigma), g in df.groupby(["condition", df["sigma"].fillna(-1)], sort=False):
        acc = g["test_accuracy"].to_numpy()
        _, lo, hi = t_interval(acc)
        rows.append(
            {
                "condition": cond,
                "sigma": np.nan if sigma == -1 else sigma,
                "label": LABELS.get(cond, cond),
                "n_models": len(acc),
                "mean_accuracy": acc.mean(),
                "ci95_lo": lo,
                "ci95_hi": hi,
                "std": acc.std(ddof=1) if len(acc) > 1 else np.nan,
                "min": acc.min(),
                "max": acc.max(),
            }
        )
    return pd.DataFrame(rows)


def figure(df: pd.DataFrame, table: pd.DataFrame, out_png: str) -> None:
    from .report import _setup_mpl

    plt, sns = _setup_mpl()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    main = df[df["condition"] != "aux_sigma"].copy()
    order = [c for c in ["reference", "teacher", "aux_same", "aux_cross", "all_same"] if c in set(main["condition"])]
    main["label"] = main["condition"].map(LABELS)
    labels = [LABELS[c] for c in order]
    sns.barplot(data=main, y="label", x="test_accuracy", order=labels, errorbar=("ci", 95), ax=a1, color="#7aa6c2")
    sns.stripplot(data=main, y="label", x="test_accuracy", order=labels, ax=a1, color="k", size=3, alpha=0.6)
    a1.axvline(0.1, ls="--", c="grey", lw=1)
    a1.set_xlabel("MNIST test accuracy (95% CI over models)")
    a1.set_ylabel("")
    a1.set_xlim(0, 1)
    sw = df[df["condition"].isin(["aux_sigma", "aux_same"])].copy()
    sw["sigma"] = sw["sigma"].fillna(0.0)
    if not sw.empty:
        sns.pointplot(data=sw, x="sigma", y="test_accuracy", errorbar=("ci", 95), ax=a2, native_scale=False)
        a2.axhline(0.1, ls="--", c="grey", lw=1)
        a2.set_xlabel("student init = teacher init + sigma * fresh init")
        a2.set_ylabel("aux-only student test accuracy")
        a2.set_ylim(0, 1)
    fig.suptitle("Subliminal learning in an MLP: students imitate 3 auxiliary logits on noise")
    fig.tight_layout()
    fig.savefig(out_png, dpi=130)
    plt.close(fig)


def caption(table: pd.DataFrame, config_name: str, config_hash: str) -> str:
    lines = [
        f"Config: `{config_name}` (sha256 {config_hash[:12]}).",
        "",
        "Mean MNIST test accuracy with t-based 95% intervals over independently trained models:",
        "",
    ]
    for _, r in table.iterrows():
        sig = "" if pd.isna(r["sigma"]) else f" (sigma = {r['sigma']:g})"
        lines.append(
            f"- {r['label']}{sig}: {r['mean_accuracy']:.3f} "
            f"[{r['ci95_lo']:.3f}, {r['ci95_hi']:.3f}], n = {r['n_models']}"
        )
    return "\n".join(lines) + "\n"
