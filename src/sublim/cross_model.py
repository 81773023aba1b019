"""fig_cross_model: does the trait transfer only between models that share an initialisation?

Reads an experiment's tests (stats.csv, written by the aggregate step; the tests were declared
there) and sets side by side, per student mode, the fair-control contrast of the students that
start from the teachers' own reference (same init, same family), from a second reference of the
same family (cross-init) and from a reference of another architecture family (cross-arch,
``reference.cross_arch``): treatment minus neutral-twin P(target), mean and t 95% interval over
twin pairs, with the one- and two-sided p and Holm of the experiment's own table (no new test).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

# the contrasts compared, as named in stats.csv, and how the figure labels them
INITS = {
    "neutral": "same init\n(teachers' reference)",
    "cross_init_neutral": "cross-init\n(same family)",
    "cross_arch_neutral": "cross-architecture",
    "matched_neutral": "behaviourally matched\n(other init)",
}


def rows(stats_csv, variant: str = "plain", metric: str = "p"):
    import pandas as pd

    s = pd.read_csv(stats_csv)
    s = s[s.contrast.isin(list(INITS)) & (s.metric == metric) & (s.variant == variant)].copy()
    s["init"] = s.contrast.map({k: v.replace("\n", " ") for k, v in INITS.items()})
    return s


def figure(out_png, out_caption, *, stats_csv, variant: str = "plain") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from . import manifest

    t0 = time.time()
    s = rows(stats_csv, variant)
    modes = sorted(s["mode"].unique())
    inits = [c for c in INITS if c in set(s.contrast)]
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(inits), 4.2))
    for j, mode in enumerate(modes):
        g = s[s["mode"] == mode].set_index("contrast").reindex(inits)
        x = np.arange(len(inits)) + (j - (len(modes) - 1) / 2) * 0.18
        ax.errorbar(x, g["estimate"], yerr=np.nan_to_num([g["estimate"] - g["ci_lo"], g["ci_hi"] - g["estimate"]]),
                    fmt="o", capsize=4, label=mode)  # fmt: skip
    ax.set_xticks(range(len(inits)), [INITS[c] for c in inits])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="treatment − neutral twin, P(target)", title="Transfer by the student's starting model")
    ax.legend(title="student mode", fontsize=8)
    fig.tight_layout()
    manifest.save_figure(fig, out_png)
    with manifest.atomic_path(out_caption) as tmp:
        Path(tmp).write_text(caption(s))
    manifest.write_json_atomic(manifest.manifest_path(out_png),
                               manifest.build_manifest("fig_cross_model", {"variant": variant},
                                                       {"stats": stats_csv}, None, t0))  # fmt: skip


def caption(s) -> str:
    intro = (
        "Per student mode, the fair-control contrast (students of the trait teachers minus students of their neutral "
        "twins, P(target), mean and t 95% interval over twin pairs) for students that start from the teachers' own "
        "reference, from a second reference of the same architecture (another seed) and from a reference of another "
        "architecture family (on the tiny model: pretrained on the same corpus with the same tokenizer; in the "
        "presets: the local model of reference.cross_arch_path), and, where the matrix has them, from a second "
        "reference distilled to behave like the teachers' own (behaviourally matched, reference.matched). The tests "
        "and their Holm correction are the experiment's own (stats.csv)."
    )
    lines = ["# fig_cross_model: transfer by the student's starting model", "", *textwrap.wrap(intro, 110), "",
             "| student start | mode | estimate [t 95% CI] | p one-sided | p two-sided | Holm (one / two) | units |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in s.sort_values(["contrast", "mode"]).iterrows():
        lines.append(
            f"| {r['init']} | {r['mode']} | {r['estimate']:.3g} [{r['ci_lo']:.3g}, {r['ci_hi']:.3g}] | "
            f"{r['p_one_sided']:.3g} | {r['p_two_sided']:.3g} | {r['p_holm_one_sided']:.3g} / "
            f"{r['p_holm_two_sided']:.3g} | {r['n_units']} ({r['unit']}) |"
        )
    return "\n".join(lines) + "\n"
