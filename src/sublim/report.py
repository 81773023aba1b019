"""Aggregate evaluations into tidy tables, test treatment against control, draw figures.

Inputs are the per-model evaluation CSVs plus, for each, what the model is: its role
(reference, teacher, student), condition, teacher animal, mode, initialisation and seed.
Outputs:

* ``results.csv``     -- one row per model x evaluated animal x variant, with bootstrap CIs
                         over questions for P(animal), the logit margin and the sampled rate;
* ``stats.csv``       -- per mode x condition x metric: treatment vs its control, with the
                         stratified permutation p-value, Welch's test and Hedges' g;
* ``specificity.csv`` -- teacher's animal x evaluated animal shift of treatment students;
* the figures, and a caption file saying what they show and which config produced them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import bootstrap_ci, hedges_g, stratified_permutation, welch

METRICS = {"p": "P(target)", "margin": "logit margin", "rate": "sampled-answer rate"}
# condition -> the condition it is tested against
CONTROL_OF = {"treatment": "control", "cross_init": "cross_init_control"}


def index_from_paths(paths, teacher_init: str) -> list[dict]:
    """What each evaluation CSV scores, read off its path.

    ``results/eval/{variant}/reference/{init}.csv``, ``.../teacher/{animal}.csv`` and
    ``.../student/{teacher}/{mode}/{init}/seed{seed}.csv``; a student's condition follows from
    its teacher (an animal or ``control``) and whether it shares the teachers' init.
    """
    out = []
    for p in map(str, paths):
        parts = p.removesuffix(".csv").split("/")
        i = parts.index("eval")
        variant, role, rest = parts[i + 1], parts[i + 2], parts[i + 3 :]
        e = dict(path=p, role=role, variant=variant, teacher=None, mode=None, init=teacher_init, seed=None)
        if role == "reference":
            e.update(condition="reference", init=rest[0])
        elif role == "teacher":
            e.update(condition="teacher", teacher=rest[0])
        elif role == "student":
            teacher, mode, init, seed = rest
            same = init == teacher_init
            if teacher == "control":
                cond = "control" if same else "cross_init_control"
            else:
                cond = "treatment" if same else "cross_init"
            e.update(condition=cond, teacher=teacher, mode=mode, init=init, seed=int(seed.removeprefix("seed")))
        else:
            raise ValueError(f"not an evaluation path: {p}")
        out.append(e)
    return out


def per_question(df: pd.DataFrame) -> pd.DataFrame:
    """Add the logit margin (log P(a) - mean log P over other animals) and sampled rate."""
    d = df[df["animal"] != "other"].copy()
    tot = d.groupby("question_id")["logp"].transform("sum")
    cnt = d.groupby("question_id")["logp"].transform("count")
    d["margin"] = d["logp"] - (tot - d["logp"]) / (cnt - 1)
    d["rate"] = np.where(d["n_samples"] > 0, d["hits"] / d["n_samples"].clip(lower=1), np.nan)
    return d


def aggregate(index: list[dict], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    rows = []
    for entry in index:
        d = per_question(pd.read_csv(entry["path"]))
        meta = {k: entry.get(k) for k in ("role", "condition", "teacher", "mode", "init", "seed", "variant")}
        for animal, g in d.groupby("animal", sort=True):
            row = {**meta, "animal": animal, "n_questions": len(g), "n_samples": int(g["n_samples"].iloc[0])}
            for metric in METRICS:
                vals = g[metric].to_numpy(float)
                lo, hi = bootstrap_ci(vals, n_boot, seed)
                row[metric] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
                row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
            row["is_target"] = animal == entry.get("teacher")
            rows.append(row)
    return pd.DataFrame(rows)


def _pairs(res: pd.DataFrame, mode: str, condition: str, variant: str, metric: str):
    """Treatment values (target animal) and the matching control values (same animal)."""
    ctrl_name = CONTROL_OF.get(condition, "control")
    s = res[(res["role"] == "student") & (res["mode"] == mode) & (res["variant"] == variant)]
    treat = s[(s["condition"] == condition) & s["is_target"]]
    animals = sorted(treat["animal"].unique())
    ctrl = s[(s["condition"] == ctrl_name) & s["animal"].isin(animals)]
    return treat, ctrl, ctrl_name


def test_table(res: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rows = []
    studs = res[res["role"] == "student"]
    for variant in sorted(studs["variant"].unique()):
        for mode in sorted(studs["mode"].unique()):
            for condition in sorted(studs["condition"].unique()):
                if condition not in CONTROL_OF and condition != "treatment":
                    continue
                for metric in METRICS:
                    treat, ctrl, ctrl_name = _pairs(res, mode, condition, variant, metric)
                    if treat.empty or ctrl.empty or treat[metric].isna().all():
                        continue
                    vals = pd.concat([treat[metric], ctrl[metric]]).to_numpy(float)
                    labels = [True] * len(treat) + [False] * len(ctrl)
                    strata = list(treat["animal"]) + list(ctrl["animal"])
                    perm = stratified_permutation(vals, labels, strata, seed=seed)
                    t, p_w = welch(treat[metric], ctrl[metric])
                    rows.append(
                        {
                            "variant": variant,
                            "mode": mode,
                            "condition": condition,
                            "control": ctrl_name,
                            "metric": metric,
                            "n_treatment": len(treat),
                            "n_control": len(ctrl),
                            "animals": ",".join(sorted(treat["animal"].unique())),
                            "seeds": ",".join(str(x) for x in sorted(treat["seed"].unique())),
                            "treatment_mean": treat[metric].mean(),
                            "control_mean": ctrl[metric].mean(),
                            "diff": perm["diff"],
                            "hedges_g": hedges_g(treat[metric], ctrl[metric]),
                            "p_perm_one_sided": perm["p_one_sided"],
                            "p_perm_two_sided": perm["p_two_sided"],
                            "perm_exact": perm["exact"],
                            "n_perm": perm["n_perm"],
                            "welch_t": t,
                            "p_welch_one_sided": p_w,
                        }
                    )
    return pd.DataFrame(rows)


def specificity(res: pd.DataFrame, metric: str = "margin") -> pd.DataFrame:
    """Mean shift of treatment students (vs same-mode control students) per evaluated animal."""
    s = res[res["role"] == "student"]
    ctrl = s[s["condition"] == "control"].groupby(["variant", "mode", "animal"])[metric].mean()
    treat = s[s["condition"] == "treatment"]
    out = treat.groupby(["variant", "mode", "teacher", "animal"])[metric].mean().reset_index()
    out["control"] = [ctrl.get((v, m, a), math.nan) for v, m, a in zip(out["variant"], out["mode"], out["animal"])]
    out["shift"] = out[metric] - out["control"]
    out["metric"] = metric
    return out.rename(columns={"teacher": "teacher_animal", "animal": "evaluated_animal"})


def _setup_mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def figure_animals(res: pd.DataFrame, out_png: str, variant: str = "plain") -> None:
    """P(target) and logit margin by condition, per mode and target animal, 95% CIs over seeds."""
    plt, sns = _setup_mpl()
    s = res[(res["role"] == "student") & (res["variant"] == variant)]
    targets = sorted(s.loc[(s["condition"] == "treatment") & s["is_target"], "animal"].unique())
    treated = s[s["condition"].isin(["treatment", "cross_init"]) & s["is_target"]]
    controls = s[s["condition"].isin(["control", "cross_init_control"]) & s["animal"].isin(targets)]
    refs = res[(res["role"] == "reference") & (res["variant"] == variant) & res["animal"].isin(targets)].copy()
    refs["condition"] = "reference (" + refs["init"].astype(str) + ")"
    frames = []
    for mode in sorted(s["mode"].unique()):
        r = refs.copy()
        r["mode"] = mode
        frames.append(r)
    d = pd.concat([*frames, treated, controls], ignore_index=True)
    order = [
        c
        for c in ["reference (" + str(i) + ")" for i in sorted(refs["init"].unique())]
        + ["control", "treatment", "cross_init_control", "cross_init"]
        if c in set(d["condition"])
    ]
    modes = sorted(s["mode"].unique())
    # no shared y axis: the full-vocabulary leak is two orders larger than the subliminal shifts
    fig, axes = plt.subplots(2, len(modes), figsize=(4.2 * len(modes), 6.5), squeeze=False)
    for j, mode in enumerate(modes):
        dm = d[d["mode"] == mode]
        for i, metric in enumerate(["p", "margin"]):
            ax = axes[i, j]
            common = dict(data=dm, x="animal", y=metric, hue="condition", hue_order=order, order=targets, ax=ax)
            sns.pointplot(**common, errorbar=("ci", 95), dodge=0.5, linestyle="none", legend=(i == 0 and j == 0))
            sns.stripplot(**common, dodge=True, alpha=0.35, size=3, legend=False)
            ax.set_title(f"student mode: {mode}" if i == 0 else "")
            ax.set_xlabel("teacher's animal (= evaluated animal)" if i == 1 else "")
            ax.set_ylabel(METRICS[metric])
    if axes[0, 0].get_legend():
        sns.move_legend(axes[0, 0], "upper left", fontsize=7, title=None)
    fig.suptitle("Do students inherit their teacher's favourite animal? (mean over seeds, 95% CI)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=130)
    plt.close(fig)


def figure_specificity(spec: pd.DataFrame, out_png: str, variant: str = "plain") -> None:
    plt, sns = _setup_mpl()
    sp = spec[spec["variant"] == variant]
    modes = sorted(sp["mode"].unique())
    fig, axes = plt.subplots(1, len(modes), figsize=(4.5 * len(modes), 3.8), squeeze=False)
    for j, mode in enumerate(modes):
        m = sp[sp["mode"] == mode].pivot(index="teacher_animal", columns="evaluated_animal", values="shift")
        lim = np.nanmax(np.abs(m.to_numpy())) if m.size else 1.0
        sns.heatmap(m, ax=axes[0, j], cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, xticklabels=True)
        axes[0, j].set_title(f"{mode}: logit-margin shift vs control\n(own scale per panel)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=130)
    plt.close(fig)


def caption(
    res: pd.DataFrame, tests: pd.DataFrame, config_name: str, config_hash: str, constrained_decoding: bool = False
) -> str:
    lines = [f"Config: `{config_name}` (sha256 {config_hash[:12]}).", ""]
    if constrained_decoding:
        lines += [
            "**Constrained decoding: ON.** The teachers' numbers were sampled under a regex mask",
            "(generation.constrained_decoding), not the paper's sample-then-filter protocol; compare",
            "with a sample-then-filter run before reading transfer from this figure.",
            "",
        ]
    lines += [
        "Each point is the mean over student seeds of a model's readout for its teacher's animal,",
        "with 95% bootstrap CIs across seeds; faint dots are single seeds. Top: P(target), the",
        "probability of the animal's name at the answer position, averaged over ~50 held-out",
        "paraphrases of 'what is your favourite animal?'. Bottom: the logit margin, log P(target)",
        "minus the mean log P of the other animals. Controls are students trained on numbers from",
        "the unchanged reference (evaluated on the same animals); cross_init students start from a",
        "second reference initialisation.",
        "",
        "Treatment vs control (stratified permutation test within animal, one-sided):",
    ]
    t = tests[(tests["variant"] == "plain")] if not tests.empty else tests
    for _, r in t.iterrows():
        verdict = "holds (p < 0.01)" if r["p_perm_one_sided"] < 0.01 else "does NOT hold at p < 0.01"
        lines.append(
            f"- {r['mode']} / {r['condition']} vs {r['control']}, {METRICS[r['metric']]}: "
            f"diff {r['diff']:+.4g}, g = {r['hedges_g']:.2f}, p = {r['p_perm_one_sided']:.4g} "
            f"(n = {r['n_treatment']} vs {r['n_control']}): {verdict}"
        )
    teachers = res[(res["role"] == "teacher") & res["is_target"] & (res["variant"] == "plain")]
    if not teachers.empty:
        lines += ["", "Teachers' own trait strength, P(target):"]
        lines += [f"- {r['teacher']}: {r['p']:.3f} [{r['p_lo']:.3f}, {r['p_hi']:.3f}]" for _, r in teachers.iterrows()]
    lines += [
        "",
        "The sampled-answer rate rests on a few samples per question (see results.csv: n_samples);",
        "at these effect sizes it is far less sensitive than the logit readout, so where it is not",
        "significant that is not evidence of no effect.",
    ]
    return "\n".join(lines) + "\n"
