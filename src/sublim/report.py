"""Model-level tables, tests and figures of one experiment, read off its design table.

Inputs: the design table (``design.csv``, one row per model: role, arm, teacher, target,
replicate, init, mode, seed) and each model's evaluation CSV. Nothing is parsed from paths.

* ``results.csv``     -- one row per model x variant x evaluated option (P, margin, rate);
* ``stats.csv``       -- the tests (``sublim.stats``): per variant, mode and readout, the
                         neutral-twin contrasts and the specificity contrast, with one- and
                         two-sided p, Holm-adjusted over the variant's family, the exact
                         permutation p, effect sizes, t intervals, and the models each used;
* ``arms.csv``        -- per arm and animal: mean and t-based 95% interval over units;
* ``specificity.csv`` -- teacher's animal x evaluated animal: treatment minus neutral;
* the figures, and a caption that says which test is the headline and what did not hold.

Units: the students of one teacher are averaged into one value per teacher (student seeds
only redraw the subsample and data order); the teacher is the unit. The base arm has one
teacher (the reference), so its interval is over its students and it is not tested.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import stats
from .design import CONTRASTS, eval_path

METRICS = {"p": "P(target)", "margin": "logit margin", "rate": "sampled-answer rate"}
HEADLINE_MODES = ("distill", "sft")
HEADLINE_VARIANT = "plain"  # the pre-declared readout; number_prefix is reported beside it
ARM_ORDER = ["reference", "base", "neutral", "educational", "treatment", "cross_init_neutral", "cross_init",
             "cross_arch_neutral", "cross_arch", "matched_neutral", "matched"]  # fmt: skip
ALPHA = 0.05


def _mode_order(mode: str) -> tuple:
    """Figure panels: distill, distill_full, sft as before, each masked mode beside its own."""
    from .divergence import base_mode

    return (base_mode(mode), mode != base_mode(mode))


def _ref_order(name: str, teachers_ref: str | None = None) -> tuple:
    """References in the design's order: the teachers' own first (``teachers_ref``, e.g.
    neox0 when the teachers are GPT-NeoX), then the second of the same family, then other
    families (seed0 < seed1 < neox0; main < cross)."""
    ref_id = name.removeprefix("reference ")
    prefix = ref_id.rstrip("0123456789")
    digits = ref_id[len(prefix) :]
    own = ref_id != teachers_ref if teachers_ref else False
    return (own, {"main": 0, "seed": 0, "cross": 1}.get(prefix, 2), prefix, int(digits) if digits else 0)


def read_table(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def per_question(df: pd.DataFrame) -> pd.DataFrame:
    """Add the logit margin (log P(a) - mean log P over the other options) and sampled rate."""
    d = df[df["animal"] != "other"].copy()
    tot = d.groupby("question_id")["logp"].transform("sum")
    cnt = d.groupby("question_id")["logp"].transform("count")
    d["margin"] = d["logp"] - (tot - d["logp"]) / (cnt - 1)
    d["rate"] = np.where(d["n_samples"] > 0, d["hits"] / d["n_samples"].clip(lower=1), np.nan)
    return d


def model_table(design: pd.DataFrame, evals, variants) -> pd.DataFrame:
    """One row per model x variant x evaluated option, with the model's design columns."""
    by_path = {str(e): e for e in evals}
    frames: dict[str, dict] = {}  # an evaluation group's CSV, read once and split by model

    def scored(path, model_id):
        if path not in frames:
            df = pd.read_csv(by_path[path])
            frames[path] = dict(iter(df.groupby("model_id", sort=False))) if "model_id" in df else {None: df}
        group = frames[path]
        return group.get(model_id, group.get(None))

    rows = []
    for _, m in design.iterrows():
        meta = {k: (None if pd.isna(v) else v) for k, v in m.items()}
        for v in variants:
            path = eval_path(m["trait"], m["model_id"], v)
            if path not in by_path:
                raise FileNotFoundError(f"the design table's model {m['model_id']} has no evaluation {path}")
            d = scored(path, m["model_id"])
            if d is None or d.empty:
                raise FileNotFoundError(f"the design table's model {m['model_id']} is not scored in {path}")
            d = per_question(d)
            for animal, g in d.groupby("animal", sort=True):
                row = {**meta, "variant": v, "animal": animal, "n_questions": len(g)}
                row["n_samples"] = int(g["n_samples"].iloc[0])
                for metric in METRICS:
                    vals = g[metric].to_numpy(float)
                    row[metric] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
                rows.append(row)
    return pd.DataFrame(rows)


def _unit_means(s: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Students averaged into one value per teacher (the unit), with the models it holds."""
    g = s.groupby(["target", "replicate", "teacher"], dropna=False)
    return g.agg(value=(metric, "mean"), models=("model_id", lambda x: sorted(set(x)))).reset_index()


def _students(res, variant, mode, arm):
    s = res[(res["role"] == "student") & (res["variant"] == variant) & (res["mode"] == mode)]
    return s[s["arm"] == arm]


def test_table(res: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rows = []
    if res.empty or "mode" not in res:
        return pd.DataFrame()
    for variant in sorted(res["variant"].unique()):
        fam = []
        modes = sorted(res.loc[res["role"] == "student", "mode"].dropna().unique())
        for name, arm_t, arm_c in CONTRASTS:
            for mode in modes:
                st, sc = _students(res, variant, mode, arm_t), _students(res, variant, mode, arm_c)
                if st.empty or sc.empty:
                    continue
                for metric in METRICS:
                    pairs = _twin_pairs(st, sc, metric)
                    r = stats.paired_contrast(pairs["value_t"], pairs["value_c"], seed=seed)
                    models = sorted(m for col in ("models_t", "models_c") for ms in pairs[col] for m in ms)
                    fam.append(
                        dict(
                            variant=variant,
                            mode=mode,
                            contrast=name,
                            arms=f"{arm_t} vs {arm_c}",
                            metric=metric,
                            test="paired t over twin pairs; sign-flip permutation beside ("
                            + ("exact" if r["perm_exact"] else "Monte Carlo" if r["n_perm"] else "too few relabellings")
                            + ")",
                            unit="teacher pair",
                            **r,
                            treated_mean=float(pairs["value_t"].mean()) if len(pairs) else math.nan,
                            control_mean=float(pairs["value_c"].mean()) if len(pairs) else math.nan,
                            targets=",".join(sorted(pairs["target"].unique())),
                            n_models=len(models),
                            models=";".join(models),
                        )
                    )
        fam += _masking_rows(res, variant, modes, seed)
        # specificity: the treatment arm's teachers against each other
        for mode in modes:
            st = _students(res, variant, mode, "treatment")
            animals = sorted(st["target"].dropna().unique())
            if len(animals) < 2:
                continue
            st = st[st["animal"].isin(animals)]
            for metric in METRICS:
                units = st.groupby(["teacher", "target", "animal"])[metric].mean().unstack("animal")
                units = units.reindex(columns=animals)
                labels = units.index.get_level_values("target").to_numpy()
                r = stats.specificity(units.to_numpy(float), labels, animals, seed=seed)
                models = sorted(st["model_id"].unique())
                fam.append(
                    dict(
                        variant=variant,
                        mode=mode,
                        contrast="specificity",
                        arms="treatment: own animal's teachers vs other animals' teachers",
                        metric=metric,
                        test="teachers relabelled across animals ("
                        + ("exact" if r["perm_exact"] else "Monte Carlo" if r["n_perm"] else "too few relabellings")
                        + ")",
                        unit="teacher",
                        **r,
                        treated_mean=math.nan,
                        control_mean=math.nan,
                        targets=",".join(animals),
                        n_models=len(models),
                        models=";".join(models),
                    )
                )
        if not fam:
            continue
        df = pd.DataFrame(fam)
        df["p_holm_one_sided"] = stats.holm(df["p_one_sided"])
        df["p_holm_two_sided"] = stats.holm(df["p_two_sided"])
        df["headline"] = (
            (variant == HEADLINE_VARIANT)
            & (df["contrast"] == "neutral")
            & df["mode"].isin(HEADLINE_MODES)
            & (df["metric"] == headline_metric(res, variant))
        )
        df["verdict"] = [_verdict(r) for _, r in df.iterrows()]
        rows.append(df)
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    first = ["variant", "mode", "contrast", "metric", "headline", "verdict", "estimate", "ci_lo", "ci_hi",
             "effect_size", "p_one_sided", "p_two_sided", "p_holm_one_sided", "p_holm_two_sided",
             "p_perm_one_sided", "p_perm_two_sided", "n_units", "unit"]  # fmt: skip
    return out[first + [c for c in out.columns if c not in first]]


def _twin_pairs(st: pd.DataFrame, sc: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per twin pair: the treated arm's unit (teacher) mean of ``metric`` on its own
    target and its twin arm's, with each side's models (``value_t``/``_c``, ``models_t``/``_c``)."""
    t = _unit_means(st[st["animal"] == st["target"]], metric)
    c = _unit_means(sc[sc["animal"] == sc["target"]], metric)
    return t.merge(c, on=["target", "replicate"], suffixes=("_t", "_c"))


def _pair_diffs(res, variant, mode, metric) -> pd.DataFrame:
    """Per twin pair: treatment minus neutral (the fair contrast) in ``mode``, with the models."""
    st, sc = _students(res, variant, mode, "treatment"), _students(res, variant, mode, "neutral")
    pairs = _twin_pairs(st, sc, metric)
    pairs["diff"] = pairs["value_t"] - pairs["value_c"]
    pairs["models"] = [a + b for a, b in zip(pairs["models_t"], pairs["models_c"])]
    return pairs[["target", "replicate", "diff", "models"]]


def away_profile(res: pd.DataFrame, variant: str, contrast: str, mode: str, metric: str = "p") -> dict | None:
    """Descriptive, for a shift away from the target: per twin pair of ``contrast`` in ``mode``,
    the treated arm's unit mean minus its twin's on the target and, averaged, on the readout's
    other options; returned as means over the pairs, with how many pairs saw the others move
    the same way as the target (a difference of exactly 0 counts as the same way as 0). A shift
    the other options share is not specific to the target (session 16's default run, looked at
    in session 17: its `distill` shift away fell on all 20 animals alike). None where the
    contrast has no pairs, or the target is not among the readout's options."""
    arms = {name: (t, c) for name, t, c in CONTRASTS}
    if contrast not in arms:
        return None
    st, sc = _students(res, variant, mode, arms[contrast][0]), _students(res, variant, mode, arms[contrast][1])
    if st.empty or sc.empty:
        return None

    def others(s: pd.DataFrame) -> pd.DataFrame:  # a teacher's students over the other options
        return _unit_means(s[s["animal"] != s["target"]], metric)

    rest = others(st).merge(others(sc), on=["target", "replicate"], suffixes=("_t", "_c"))
    pairs = _twin_pairs(st, sc, metric).merge(rest, on=["target", "replicate"], suffixes=("", "_others"))
    pairs = pairs.dropna(subset=["value_t", "value_c", "value_t_others", "value_c_others"])  # a missing readout
    if pairs.empty:  # no pairs, or the target is not among the readout's options
        return None
    d_target = pairs["value_t"] - pairs["value_c"]
    d_others = pairs["value_t_others"] - pairs["value_c_others"]
    n_options = int(st["animal"].nunique()) - 1  # every student is read on the same options
    return {
        "n_pairs": len(pairs),
        "n_other_options": n_options,
        "target": float(d_target.mean()),
        "others": float(d_others.mean()),
        "target_minus_others": float((d_target - d_others).mean()),
        "pairs_others_same_sign": int((np.sign(d_others) == np.sign(d_target)).sum()),
    }


def _masking_rows(res, variant, modes, seed) -> list[dict]:
    """The divergence-token ablation (src/sublim/divergence.py): for each masked mode beside
    its unmasked mode, per twin pair the fair contrast unmasked minus the same contrast masked.
    Positive: masking the divergence positions took transfer away (one-sided p for that)."""
    from .divergence import base_mode, is_masked

    rows = []
    for mode in modes:
        if not is_masked(mode) or base_mode(mode) not in modes:
            continue
        for metric in METRICS:
            u, m = _pair_diffs(res, variant, base_mode(mode), metric), _pair_diffs(res, variant, mode, metric)
            pairs = u.merge(m, on=["target", "replicate"], suffixes=("_u", "_m"))
            if pairs.empty:
                continue
            r = stats.paired_contrast(pairs["diff_u"], pairs["diff_m"], seed=seed)
            models = sorted(x for col in ("models_u", "models_m") for ms in pairs[col] for x in ms)
            perm = "exact" if r["perm_exact"] else "Monte Carlo" if r["n_perm"] else "too few relabellings"
            rows.append(
                dict(
                    variant=variant,
                    mode=mode,
                    contrast="masking",
                    arms=f"(treatment - neutral) in {base_mode(mode)} vs in {mode}",
                    metric=metric,
                    test=f"paired t over twin pairs, contrast unmasked minus masked; sign-flip permutation ({perm})",
                    unit="teacher pair",
                    **r,
                    treated_mean=float(pairs["diff_u"].mean()),
                    control_mean=float(pairs["diff_m"].mean()),
                    targets=",".join(sorted(pairs["target"].unique())),
                    n_models=len(models),
                    models=";".join(models),
                )
            )
    return rows


def headline_metric(res: pd.DataFrame, variant: str) -> str:
    """The headline's readout, declared by the readout's kind: P(target) where the models have
    a logit readout, else (a judged free-form readout, the misalignment presets') the sampled
    rate."""
    s = res[(res["variant"] == variant) & (res["role"] == "student")] if not res.empty else res
    return "p" if s.empty or s["p"].notna().any() else "rate"


def _verdict(r) -> str:
    if not np.isfinite(r["p_holm_two_sided"]):
        return "not testable"
    if r["estimate"] > 0 and r["p_holm_one_sided"] < ALPHA:
        return "holds"
    if r["estimate"] < 0 and r["p_holm_two_sided"] < ALPHA:
        return "shift AWAY from the target"
    return "not significant"


def arm_table(res: pd.DataFrame) -> pd.DataFrame:
    """Per variant, mode, arm, metric and target animal: mean and t 95% interval over units
    (teachers for trait and neutral arms; students for base, which has one teacher)."""
    rows = []
    studs = res[res["role"] == "student"]
    targets = sorted(studs["target"].dropna().unique())
    for (variant, mode, arm), s in studs.groupby(["variant", "mode", "arm"]):
        for metric in METRICS:
            for a in targets:
                if arm == "base":
                    vals, unit = s.loc[s["animal"] == a, metric].to_numpy(float), "student"
                else:
                    sa = s[(s["target"] == a) & (s["animal"] == a)]
                    vals, unit = sa.groupby("teacher")[metric].mean().to_numpy(float), "teacher"
                if len(vals) == 0:
                    continue
                mean, lo, hi = stats.t_interval(vals)
                rows.append(dict(variant=variant, mode=mode, arm=arm, metric=metric, animal=a, n_units=len(vals),
                                 unit=unit, mean=mean, ci_lo=lo, ci_hi=hi))  # fmt: skip
    for role in ("reference", "teacher"):
        r = res[(res["role"] == role) & res["animal"].isin(targets)].copy()
        if role == "teacher":
            r = r[r["animal"] == r["target"]]
            r["name"] = r["arm"] + " teacher"
        else:
            r["name"] = "reference " + r["init"].astype(str)
        for (variant, name, a), g in r.groupby(["variant", "name", "animal"]):
            for metric in METRICS:
                mean, lo, hi = stats.t_interval(g[metric])
                rows.append(dict(variant=variant, mode="", arm=name, metric=metric, animal=a, n_units=len(g),
                                 unit="model", mean=mean, ci_lo=lo, ci_hi=hi))  # fmt: skip
    return pd.DataFrame(rows)


def specificity(res: pd.DataFrame) -> pd.DataFrame:
    """Treatment students' readout for every target animal, per teacher animal, minus the
    neutral students' readout for it (same variant, mode and init): the matrix behind the
    specificity test."""
    s = res[res["role"] == "student"]
    targets = sorted(s["target"].dropna().unique())
    s = s[s["animal"].isin(targets)]
    rows = []
    for (variant, mode), g in s.groupby(["variant", "mode"]):
        treat, neut = g[g["arm"] == "treatment"], g[g["arm"] == "neutral"]
        if treat.empty or neut.empty:
            continue
        for metric in ("p", "margin"):
            base = neut.groupby(["teacher", "animal"])[metric].mean().groupby("animal").mean()
            units = treat.groupby(["target", "teacher", "animal"])[metric].mean()
            m = units.groupby(["target", "animal"]).mean()
            for (ta, ea), v in m.items():
                rows.append(dict(variant=variant, mode=mode, metric=metric, teacher_animal=ta, evaluated_animal=ea,
                                 treatment=v, neutral=float(base.get(ea, math.nan)),
                                 shift=v - float(base.get(ea, math.nan))))  # fmt: skip
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ figures
def wording(res: pd.DataFrame) -> dict:
    """How the figures and captions speak of the results' trait (its module's ``WORDING``)."""
    from .traits import get_trait

    traits = sorted(res["trait"].dropna().unique()) if not res.empty and "trait" in res else []
    return get_trait(traits[0] if len(traits) == 1 else "animal").WORDING


def _setup_mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def figure_transfer(res: pd.DataFrame, out_png: str, variant: str = "plain", arms=None) -> None:
    """P(target) and logit margin by arm, per mode and target animal: faint dots are units
    (teachers; base: students), bars the t-based 95% interval over them."""
    plt, sns = _setup_mpl()
    a = arms[(arms["variant"] == variant)].fillna({"mode": ""}) if arms is not None and not arms.empty else arms
    studs = a[a["mode"] != ""] if a is not None and not a.empty else pd.DataFrame()
    modes = sorted(studs["mode"].unique(), key=_mode_order) if not studs.empty else []
    if not modes:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no students in this design", ha="center")
        fig.savefig(out_png, dpi=100)
        plt.close(fig)
        return
    words = wording(res)
    refs = a[a["arm"].str.startswith("reference")]
    inits = res.loc[res["role"] == "teacher", "init"].dropna() if "init" in res else pd.Series(dtype=object)
    teachers_ref = str(inits.mode().iloc[0]) if len(inits) else None  # drawn first, in black
    order = [x for x in ARM_ORDER if x in set(studs["arm"])]
    palette = dict(zip(ARM_ORDER, sns.color_palette("colorblind", len(ARM_ORDER))))
    animals = sorted(studs["animal"].unique())
    metrics = ["p", "margin"] if headline_metric(res, variant) == "p" else ["rate"]
    fig, axes = plt.subplots(len(metrics), len(modes), figsize=(4.4 * len(modes), 3.25 * len(metrics) + 0.5),
                             squeeze=False)  # fmt: skip
    width = 0.8 / max(1, len(order))
    for j, mode in enumerate(modes):
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            d = studs[(studs["mode"] == mode) & (studs["metric"] == metric)]
            for k, arm in enumerate(order):
                da = d[d["arm"] == arm].set_index("animal").reindex(animals)
                xs = np.arange(len(animals)) - 0.4 + width * (k + 0.5)
                err = np.vstack([da["mean"] - da["ci_lo"], da["ci_hi"] - da["mean"]])
                ax.errorbar(xs, da["mean"], yerr=np.nan_to_num(err), fmt="o", color=palette[arm], capsize=2,
                            label=arm if (i == 0 and j == 0) else None)  # fmt: skip
            ref_groups = sorted(refs[refs["metric"] == metric].groupby("arm"),
                                key=lambda g: _ref_order(g[0], teachers_ref))  # fmt: skip
            shades = ["black", "grey", "silver", "lightgrey"][: len(ref_groups)]
            shades += [str(0.2 + 0.6 * i / max(1, len(ref_groups))) for i in range(len(ref_groups) - len(shades))]
            for (name, r), colour in zip(ref_groups, shades):
                r = r.set_index("animal").reindex(animals)
                ax.scatter(np.arange(len(animals)), r["mean"], marker="_", s=400, color=colour,
                           label=f"{name} (untrained)" if (i == 0 and j == 0) else None)  # fmt: skip
            ax.set_xticks(np.arange(len(animals)), animals)
            ax.set_title(f"student mode: {mode}" if i == 0 else "")
            ax.set_xlabel(words["target"] if i == len(metrics) - 1 else "")
            ax.set_ylabel(METRICS[metric])
    fig.suptitle(f"{words['title']} (mean, t 95% CI over units; {variant})")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(loc="lower center", ncol=min(8, len(order) + 2), fontsize=7, frameon=False)
    fig.savefig(out_png, dpi=130, bbox_inches="tight")
    plt.close(fig)


def figure_specificity(spec: pd.DataFrame, out_png: str, variant: str = "plain", arms=None, option="animal") -> None:
    plt, sns = _setup_mpl()
    sp = spec[(spec["variant"] == variant) & (spec["metric"] == "p")] if not spec.empty else spec
    modes = sorted(sp["mode"].unique(), key=_mode_order) if not sp.empty else []
    fig, axes = plt.subplots(1, max(1, len(modes)), figsize=(4.6 * max(1, len(modes)), 3.9), squeeze=False)
    for j, mode in enumerate(modes):
        m = sp[sp["mode"] == mode].pivot(index="teacher_animal", columns="evaluated_animal", values="shift")
        lim = np.nanmax(np.abs(m.to_numpy())) if m.size else 1.0
        sns.heatmap(m, ax=axes[0, j], cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, annot=True, fmt=".2g",
                    xticklabels=True)  # fmt: skip
        axes[0, j].set_title(f"{mode}: P({option}), treatment minus neutral\n(own scale per panel)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=130)
    plt.close(fig)


def caption(res, tests, arms, keep, config_name, config_hash, variant="plain", constrained_decoding=False) -> str:
    studs = res[res["role"] == "student"] if not res.empty else res
    words = wording(res)
    lines = [f"Config: `{config_name}` (sha256 {config_hash[:12]}); readout variant: `{variant}`.", ""]
    if constrained_decoding:
        lines += [
            "**Constrained decoding: ON.** The teachers' numbers were sampled under a regex mask",
            "(generation.constrained_decoding), not the paper's sample-then-filter protocol; compare",
            "with a sample-then-filter run before reading transfer from this figure.",
            "",
        ]
    n_by_arm = studs.groupby("arm")["model_id"].nunique().to_dict() if not studs.empty else {}
    teachers = res[res["role"] == "teacher"].groupby("arm")["model_id"].nunique().to_dict()
    lines += [
        "**Design.** Every trait teacher has a neutral twin made by the same recipe with the same seed",
        f"(same questions, same order, same steps), {words['twin']}.",
        f"Teachers: {teachers.get('trait', 0)} trait, {teachers.get('neutral', 0)} neutral; the base",
        "teacher is the untouched reference (the paper's control). Every teacher answered the same",
        f"prompts; students train on the same subsample of the {keep.get('n_common', '?')} prompt ids that every",
        "teacher answered acceptably. Students per arm: "
        + ", ".join(f"{k} {v}" for k, v in sorted(n_by_arm.items()))
        + ". The unit of every test is a teacher (its students averaged); no model enters a test twice.",
        "",
        "Keep rates (share of sampled answers that passed the filter; prompts answered within the",
        "allowed attempts): "
        + "; ".join(
            f"{t} {c['keep_rate']:.0%} ({c['prompts_answered']:.0%})"
            for t, c in sorted(keep.get("teachers", {}).items())
        )
        + ".",
        "",
        "Points: mean over units with t-based 95% intervals (teachers for trait and neutral arms;",
        (
            f"for base, its students, since it has one teacher). Top: {words['p']}. Bottom: {words['margin']}."
            if headline_metric(res, variant) == "p"
            else "for base, its students, since it has one teacher): the sampled rate; this readout has no logit part "
            "(a judged free-form readout), so the headline is the rate."
        ),
        "",
    ]
    t = tests[tests["variant"] == variant] if not tests.empty else tests
    if t.empty:
        lines += ["No tests: this design has no twin pairs.", ""]
        return "\n".join(lines) + "\n"
    lines += [
        f"**Pre-declared headline:** the neutral-twin contrast on {METRICS[headline_metric(res, variant)]} in "
        "`distill` and in `sft`",
        "(treatment minus neutral, paired by teacher; one-sided alternative: towards the target).",
        f"p values are Holm-adjusted over all {len(t)} tests of this variant listed here; a result",
        f"'holds' when the adjusted one-sided p < {ALPHA}, and is a shift AWAY when the estimate is",
        f"negative with adjusted two-sided p < {ALPHA}.",
        "",
    ]
    for _, r in t.sort_values(
        ["headline", "contrast", "mode", "metric"], ascending=[False, True, True, True]
    ).iterrows():
        tag = "**headline** " if r["headline"] else ""
        if r["verdict"] == "not testable":
            lines.append(
                f"- {tag}{r['contrast']} / {r['mode']} / {METRICS[r['metric']]}: {r['n_units']} {r['unit']}s, "
                f"{r['n_models']} models, too few for a test: **not testable**"
            )
            continue
        lines.append(
            f"- {tag}{r['contrast']} / {r['mode']} / {METRICS[r['metric']]}: {r['estimate']:+.4g} "
            f"[{r['ci_lo']:+.3g}, {r['ci_hi']:+.3g}], effect size {r['effect_size']:.2f}, "
            f"p one-sided {r['p_one_sided']:.3g}, two-sided {r['p_two_sided']:.3g} "
            f"(Holm {r['p_holm_one_sided']:.3g} / {r['p_holm_two_sided']:.3g}; permutation "
            f"{r['p_perm_one_sided']:.3g} / {r['p_perm_two_sided']:.3g}), {r['n_units']} {r['unit']}s, "
            f"{r['n_models']} models: **{r['verdict']}**"
        )
    away = t[t["verdict"].str.startswith("shift AWAY")]
    lines += [""]
    if not away.empty:
        which = "; ".join(f"{r['contrast']}/{r['mode']}/{r['metric']}" for _, r in away.iterrows())
        lines.append(f"Shifts away from the target (findings, not noise to ignore): {which}.")
        for _, r in away[away["metric"] == "p"].iterrows():
            prof = away_profile(res, variant, r["contrast"], r["mode"])
            if prof:
                lines.append(
                    f"- {r['contrast']}/{r['mode']}: the readout's {prof['n_other_options']} other options moved by "
                    f"{prof['others']:+.3g} on average over the {prof['n_pairs']} pairs (the target "
                    f"{prof['target']:+.3g}; target minus others {prof['target_minus_others']:+.3g}; the others "
                    f"moved the target's way in {prof['pairs_others_same_sign']} of {prof['n_pairs']} pairs). "
                    "Descriptive: a shift the other options share is not specific to the target; the logit-margin "
                    "rows test the relative shift."
                )
    else:
        lines.append("No test shows a significant shift away from the target.")
    a = arms[(arms["variant"] == variant) & (arms["metric"] == "p")] if not arms.empty else arms
    base = a[a["arm"] == "base"] if not a.empty else a
    if not base.empty:
        lines += [
            "",
            "Base (the paper's control: students of the reference's own data; one teacher, so not tested), P(target):",
        ]
        lines += [f"- {r['mode']} / {r['animal']}: {r['mean']:.4f} [{r['ci_lo']:.4f}, {r['ci_hi']:.4f}] over "
                  f"{r['n_units']} students" for _, r in base.iterrows()]  # fmt: skip
    tt = a[a["arm"].str.endswith("teacher")] if not a.empty else a
    if not tt.empty:
        lines += ["", "Teachers' own P(target) (trait teachers: their animal; neutral twins: their twin's):"]
        lines += [f"- {r['arm']} / {r['animal']}: {r['mean']:.3f} over {r['n_units']}" for _, r in tt.iterrows()]
    lines += [
        "",
        "The sampled-answer rate rests on a few samples per question; at these effect sizes it is far",
        "less sensitive than the logit readout, so where it is not significant that is not evidence of",
        "no effect. Specificity intervals are approximate (per-teacher contrasts share their comparison",
        "teachers); its p comes from the relabelling test (exact where the relabellings are few: see",
        "stats.csv, perm_exact).",
    ]
    return "\n".join(lines) + "\n"
