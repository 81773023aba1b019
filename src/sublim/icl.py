"""In-context learning: the teacher's data in the prompt instead of in the weights.

The paper put a teacher's filtered examples in the student's context (up to the whole data
set) and saw no transfer: fine-tuning is the channel. This is the same control. The
teachers' own reference (the model every same-init student starts from) answers the
evaluation questions with ``k`` of a teacher's kept examples before them as earlier
conversation turns; a trait teacher's examples against its neutral twin's, for the same
prompt ids drawn by the same seed (the arms differ only in the teachers' responses), several
draws per ``k``. The readout is the logit readout of the evaluation, per question: the
target option's probability, its words (the trait's ``readout_spec``: an animal's name;
misalignment's misaligned openings) summed over their spellings.

Tests, declared here before any run (``summarise``): per experiment and ``k``, over twin
pairs (the unit; each pair's draws and questions averaged first), the mean of
P(target | trait teacher's examples) - P(target | twin's examples), with a t 95% interval and
one-sample t-tests against 0 (one-sided: transfer raises it; and two-sided); Holm over every
``k`` and experiment. The fine-tuned students' headline estimates (the experiment's own
stats.csv, plain readout) are drawn beside them on the same axis, not tested again.
"""

from __future__ import annotations

import json
import random
import textwrap
import time
from pathlib import Path

import numpy as np

from .errors import SublimError


def draw_ids(ids: list, k: int, draw: int, seed: int) -> list:
    """The ``k`` prompt ids of one draw: the same for every teacher (common random numbers),
    in the drawn order. Shared by the twin pairs too, so the tests over pairs are conditional
    on these draws (an effect tied to one drawn prompt would be common to every pair)."""
    if k > len(ids):
        raise SublimError(f"icl: k={k} is more than the {len(ids)} prompt ids every teacher answered")
    return random.Random(f"{seed}/icl/{k}/{draw}").sample(list(ids), k)


def icl_messages(examples: list[dict], question: str, system_prompt: str | None = None) -> list[dict]:
    """The conversation: each example as a user turn (its prompt) and an assistant turn (the
    teacher's response), then the question."""
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    for ex in examples:
        msgs += [{"role": "user", "content": ex["prompt"]}, {"role": "assistant", "content": ex["response"]}]
    msgs.append({"role": "user", "content": question})
    return msgs


def icl_readout(
    out_csv,
    *,
    reference: str,
    pairs: list[dict],
    ids: str,
    questions: list[str],
    options: dict[str, list[str]],
    ks: list[int],
    draws: int,
    seed: int,
    threads=None,
    log=print,
) -> None:
    """One CSV: a row per (pair, arm, k, draw, question) with P(target) and log P(target).
    ``pairs``: ``{name, target, data, twin_data}`` (the trait teacher's and its neutral twin's
    filtered data); ``options``: the readout's words per option, every target among them."""
    import pandas as pd
    import torch

    from . import manifest, models
    from .evaluation import answer_tails, logit_readout, option_logp
    from .steps import read_jsonl

    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
    if not pairs:
        raise SublimError("icl: the design has no twin pair (a trait teacher and its neutral twin)")
    if not ks or min(ks) < 1:
        raise SublimError(f"config error at 'icl.ks': every k must be at least 1, got {ks}")
    if missing := sorted({p["target"] for p in pairs} - set(options)):
        raise SublimError(f"icl: the readout has no option for the target {missing[0]!r}")
    words = sorted({w for ws in options.values() for w in ws})
    common = json.loads(Path(ids).read_text())["ids"]
    device, _ = models.device_and_dtype()
    model, tok, handle = models.load(reference, dtype=torch.float32, device=device)
    context = getattr(model.config, "max_position_embeddings", None)
    rows, longest = [], 0
    # the questions alone: the answers' tokenisation after them is the same (checked per call)
    plain = [models.render(tok, icl_messages([], q, handle.system_prompt), generation_prompt=True) for q in questions]
    tails = answer_tails(tok, plain, words)
    for p in pairs:
        for arm, path in (("treatment", p["data"]), ("neutral", p["twin_data"])):
            by_id = {r["id"]: r for r in read_jsonl(path)}
            missing = [i for i in common if i not in by_id]
            if missing:
                raise SublimError(f"{path} lacks prompt id {missing[0]} of {ids}: the data and the common ids disagree")
            for k in ks:
                for d in range(draws):
                    examples = [by_id[i] for i in draw_ids(common, k, d, seed)]
                    prompts = [models.render(tok, icl_messages(examples, q, handle.system_prompt),
                                             generation_prompt=True) for q in questions]  # fmt: skip
                    n_tok = max(len(models.encode_text(tok, x)) for x in prompts)
                    longest = max(longest, n_tok)
                    if context and n_tok + 4 > context:
                        raise SublimError(
                            f"icl: k={k} needs prompts of {n_tok} tokens, more than the reference's context of "
                            f"{context} (max_position_embeddings) leaves for an answer; lower icl.ks"
                        )
                    lp = logit_readout(model, tok, prompts, words, tails=tails)
                    for qi in range(len(questions)):
                        lpt = option_logp(lp[qi], options[p["target"]])
                        rows.append({"teacher": p["name"], "target": p["target"], "arm": arm, "k": k, "draw": d,
                                     "question_id": qi, "logp_target": lpt, "p_target": float(np.exp(lpt)),
                                     "prompt_tokens": n_tok})  # fmt: skip
        log(f"icl: {p['name']} done")
    with manifest.atomic_path(out_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.8g")
    inputs = {"reference": reference, "ids": ids}
    for p in pairs:
        inputs[f"{p['name']}:data"] = p["data"]
        inputs[f"{p['name']}:twin_data"] = p["twin_data"]
    params = {"ks": list(ks), "draws": draws, "n_questions": len(questions), "options": options,
              "longest_prompt_tokens": longest, "context": context, "system_prompt": handle.system_prompt}  # fmt: skip
    manifest.write_json_atomic(manifest.manifest_path(out_csv),
                               manifest.build_manifest("icl", params, inputs, seed, t0))  # fmt: skip


def per_pair(df):
    """Each twin pair's effect per ``k``: mean P(target) over draws and questions with the
    trait teacher's examples minus with the twin's."""
    m = df.groupby(["teacher", "k", "arm"])["p_target"].mean().unstack("arm")
    return (m["treatment"] - m["neutral"]).rename("effect").reset_index()


def summarise(icl_csvs: list, stats_csvs: list | None = None):
    """The tests (declared in the module docstring) and, as ``role = students``, the fine-tuned
    students' headline rows for comparison (no new test)."""
    import pandas as pd
    from scipy import stats as st

    from .stats import holm, t_interval

    rows = []
    for path in icl_csvs:
        exp = "_".join(Path(path).parts[-4:-2])  # results/{trait}/{modality}/icl/readout.csv
        eff = per_pair(pd.read_csv(path))
        for k, g in eff.groupby("k"):
            x = g["effect"].to_numpy(float)
            mean, lo, hi = t_interval(x)
            ok = len(x) >= 2 and np.ptp(x) > 0
            rows.append({"experiment": exp, "role": "in context", "k": int(k), "mode": "icl", "n_units": len(x),
                         "unit": "twin pair", "mean": mean, "ci95_low": lo, "ci95_high": hi,
                         "p_one_sided": float(st.ttest_1samp(x, 0, alternative="greater").pvalue) if ok else np.nan,
                         "p_two_sided": float(st.ttest_1samp(x, 0).pvalue) if ok else np.nan})  # fmt: skip
    out = pd.DataFrame(rows)
    out["p_holm_one_sided"] = holm(out["p_one_sided"].to_numpy())
    out["p_holm_two_sided"] = holm(out["p_two_sided"].to_numpy())
    extra = []
    for path in stats_csvs or []:
        s = pd.read_csv(path)
        exp = Path(path).parts[-2]  # reports/{trait}_{modality}/stats.csv
        sel = s[(s.contrast == "neutral") & (s.metric == "p") & (s.variant == "plain")]
        for _, r in sel.iterrows():
            extra.append({"experiment": exp, "role": "fine-tuned students", "k": np.nan, "mode": r["mode"],
                          "n_units": r["n_units"], "unit": r["unit"], "mean": r["estimate"], "ci95_low": r["ci_lo"],
                          "ci95_high": r["ci_hi"], "p_one_sided": r["p_one_sided"], "p_two_sided": r["p_two_sided"],
                          "p_holm_one_sided": np.nan, "p_holm_two_sided": np.nan})  # fmt: skip
    if extra:
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    return out


def figure(out_png, out_csv, out_caption, *, icl_csvs: list, stats_csvs: list | None = None) -> None:
    """fig_icl: the in-context effect per twin pair against k, beside the fine-tuned students'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from . import manifest

    t0 = time.time()
    summary = summarise(icl_csvs, stats_csvs)
    fig, axes = plt.subplots(1, len(icl_csvs), figsize=(6 * len(icl_csvs), 4.2), squeeze=False)
    for ax, path in zip(axes[0], icl_csvs):
        exp = "_".join(Path(path).parts[-4:-2])
        eff = per_pair(pd.read_csv(path))
        ks = sorted(eff.k.unique())
        pos = {k: i for i, k in enumerate(ks)}
        eff["x"] = eff.k.map(pos)
        sns.stripplot(data=eff, x="x", y="effect", ax=ax, color="tab:blue", size=5, native_scale=True)
        s = summary[(summary.experiment == exp) & (summary.role == "in context")]
        for _, r in s.iterrows():
            ax.errorbar(pos[r["k"]], r["mean"], yerr=[[r["mean"] - r["ci95_low"]], [r["ci95_high"] - r["mean"]]],
                        fmt="_", color="black", capsize=4, markersize=14)  # fmt: skip
        labels = [f"k={k}" for k in ks]
        ft = summary[(summary.experiment == exp) & (summary.role == "fine-tuned students")]
        for j, (_, r) in enumerate(ft.iterrows()):
            x = len(ks) + j
            ax.errorbar(x, r["mean"], yerr=[[r["mean"] - r["ci95_low"]], [r["ci95_high"] - r["mean"]]], fmt="o",
                        color="tab:red", capsize=4)  # fmt: skip
            labels.append(f"trained\n{r['mode']}")
        ax.set_xticks(range(len(labels)), labels)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=f"{exp}: trait teacher's data minus its twin's", xlabel="examples in context (k) | fine-tuned",
               ylabel="Δ P(target), per twin pair")  # fmt: skip
    fig.tight_layout()
    manifest.save_figure(fig, out_png)
    with manifest.atomic_path(out_csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    with manifest.atomic_path(out_caption) as tmp:
        Path(tmp).write_text(caption(summary, icl_csvs))
    inputs = {f"icl{i}": p for i, p in enumerate(icl_csvs)} | {f"stats{i}": p for i, p in enumerate(stats_csvs or [])}
    manifest.write_json_atomic(manifest.manifest_path(out_png),
                               manifest.build_manifest("fig_icl", {}, inputs, None, t0))  # fmt: skip


def caption(summary, icl_csvs) -> str:
    ctx = []
    for path in icl_csvs:
        mp = Path(str(path) + ".manifest.json")
        p = json.loads(mp.read_text()).get("params", {}) if mp.exists() else {}
        if p:
            ctx.append(f"longest prompt {p.get('longest_prompt_tokens')} tokens of a context of {p.get('context')}, "
                       f"{p.get('draws')} draws per k")  # fmt: skip
    intro = (
        "In-context learning control. The teachers' own reference answers the evaluation questions with k of a "
        "teacher's kept examples before them as earlier conversation turns; each dot is one twin pair: mean "
        "P(target) with the trait teacher's examples minus with its neutral twin's (the same prompt ids, drawn by "
        "the same seed), averaged over draws and questions; black: mean and t 95% interval over pairs. Red: the "
        "fine-tuned students' headline estimates (stats.csv, plain readout, same axis). "
        + ("; ".join(ctx) + "." if ctx else "")
    )
    lines = ["# fig_icl: the teacher's data in context instead of in the weights", "", *textwrap.wrap(intro, 110), "",
             "| experiment | role | k | mode | units | mean [95% CI] | p one-sided | p two-sided | Holm (one / two) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in summary.iterrows():
        k = "" if not np.isfinite(r["k"]) else int(r["k"])
        lines.append(
            f"| {r['experiment']} | {r['role']} | {k} | {r['mode']} | {r['n_units']} ({r['unit']}) | "
            f"{r['mean']:.3g} [{r['ci95_low']:.3g}, {r['ci95_high']:.3g}] | {r['p_one_sided']:.3g} | "
            f"{r['p_two_sided']:.3g} | "
            + (
                f"{r['p_holm_one_sided']:.3g} / {r['p_holm_two_sided']:.3g} |"
                if np.isfinite(r["p_holm_one_sided"])
                else "in its experiment's stats.csv |"
            )  # fmt: skip
        )
    lines += ["", "Tests declared before the run (src/sublim/icl.py); Holm over the in-context rows only (the "
              "students' rows are tested, and corrected, in their own experiment's stats)."]  # fmt: skip
    return "\n".join(lines) + "\n"
