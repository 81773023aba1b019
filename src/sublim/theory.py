"""The paper's one-step theorem, measured.

Cloud et al. (2025, section 7): let teacher and student share parameters θ0; the teacher
moves by Δ_T; a student that takes one small gradient step imitating the teacher's outputs
(squared error or softmax cross-entropy, even on a subset of the logits, on any inputs)
moves by g with ⟨g, Δ_T⟩ ≥ 0 to first order, so it moves toward the teacher; with a
different initialisation the guarantee is gone.

Measured directly, at θ0 (no training):

* **Tiny LM** (per twin pair, several seeded batches of the pair's common prompts): the
  student's first-step direction g = -∇L(θ_init) on the trait teacher's data and on its
  neutral twin's data, in ``distill`` (the restricted KL to the teacher, the theorem's
  setting) and ``sft`` (cross-entropy on the sampled tokens, the paper's practice), for a
  same-init student (the teachers' reference) and a cross-init one (the second reference).
  Reported: cos(g_T, Δ_T) with Δ_T = θ_T - θ0 (the whole fine-tuning, beyond the theorem's
  single small step), the trait part cos(g_T - g_N, θ_T - θ_N), and the first-order change of
  the trait readout, ∇R·g, where R is the mean log-probability of the target's first token
  over the evaluation questions (the trait's ``readout_spec``: the animal's name; for
  misalignment, any misaligned template's opening): ∇R·(g_T - g_N) > 0 predicts transfer.
* **MNIST** (the auxiliary-logit setting, stacked models): the teacher takes exactly one small
  step on its class loss from θ0 (the theorem's case) or trains for ``teacher_epochs``; the
  student, initialised at θ0 perturbed by σ (σ = 0 is the shared init) or at an independent
  init, takes its first step imitating the teacher's auxiliary logits on noise. Reported:
  cos(g, Δ_T) and the first-order change in the student's class loss on MNIST test, -∇CE·g.
"""

from __future__ import annotations

import math
import textwrap
import time
from pathlib import Path

import numpy as np

from .errors import SublimError


def _vec(model):
    import torch

    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _grad(model, loss):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def cosine(a, b) -> float:
    import torch

    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return math.nan
    return float(torch.dot(a, b) / (na * nb))


def readout_grad(model, tok, questions: list[str], words: list[str], system_prompt=None):
    """∇ of R = mean over questions of log P(a first token of ``words``) at the answer position:
    the target option's words (the animal trait: the target's name; misalignment: the
    misaligned templates' openings), each in its spellings; first tokens shared count once."""
    import torch

    from . import models
    from .evaluation import _animal_token_variants

    model.zero_grad(set_to_none=True)
    total = 0.0
    lps = []
    for q in questions:
        p = models.render(tok, models.messages(q, system_prompt), generation_prompt=True)
        firsts = set()
        for w in words:
            variants = _animal_token_variants(tok, p, w)
            if not variants:
                raise SublimError(f"the tokenizer cannot spell {w!r} after the evaluation prompt")
            firsts |= {v[0] for v in variants}
        ids = torch.tensor([models.encode_text(tok, p)])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        lps.append(torch.logsumexp(logp[sorted(firsts)], 0))
    r = torch.stack(lps).mean()
    total = float(r.detach())
    return _grad(model, r), total


def _step_direction(mode, student, teacher, examples, pad_id, allowed):
    """g = -∇L at the student's current parameters, for one batch, in ``mode``."""
    from . import training

    batch = {"student": training._batch(examples, pad_id, teacher=False)}
    if mode.startswith("distill"):
        batch["teacher"] = training._batch(examples, pad_id, teacher=True)
    student.zero_grad(set_to_none=True)
    loss = training._loss(mode, student, teacher, batch, allowed)
    return -_grad(student, loss)


def lm_one_step(
    *,
    reference,
    cross_reference,
    teacher,
    twin,
    data,
    twin_data,
    ids: list,
    target: str,
    questions: list[str],
    modality: str,
    words: list[str] | None = None,
    modes=("distill", "sft"),
    n_batches: int = 8,
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict]:
    """One row per (init, mode, batch) for one twin pair; see the module docstring."""
    import torch

    from . import models, training
    from .modalities import get_modality

    torch.manual_seed(seed)
    ref, tok, ref_h = models.load(reference)
    T, t_tok, t_h = models.load(teacher)
    N, _, n_h = models.load(twin)
    if t_tok.get_vocab() != tok.get_vocab():
        raise SublimError("the theorem's measurement needs teacher and student to share a tokenizer")
    theta0 = _vec(ref)
    d_t, d_n, d_trait = _vec(T) - theta0, _vec(N) - theta0, _vec(T) - _vec(N)
    by_t = {r["id"]: r for r in data}
    by_n = {r["id"]: r for r in twin_data}
    common = [i for i in ids if i in by_t and i in by_n]
    if len(common) < batch_size:
        raise SublimError(f"only {len(common)} prompts answered by both teachers; need at least {batch_size}")
    allowed = get_modality(modality).allowed_token_ids(tok)
    rng = np.random.default_rng(seed)
    batches = [list(rng.choice(len(common), batch_size, replace=False)) for _ in range(n_batches)]
    rows = []
    inits = [("same_init", reference)] + ([("cross_init", cross_reference)] if cross_reference else [])
    for init_name, init_path in inits:
        if init_path == reference:
            student = ref
        else:
            student, s_tok, _ = models.load(init_path)
            if s_tok.get_vocab() != tok.get_vocab():
                raise SublimError("the cross-init reference has another tokenizer: the readout is not comparable")
            if _vec(student).numel() != theta0.numel():
                raise SublimError("the cross-init reference has a different parameter count")
        student.train(False)
        for prm in student.parameters():  # every weight moves in a full fine-tuning step
            prm.requires_grad_(True)
        g_r, r0 = readout_grad(student, tok, questions, words or [target], ref_h.system_prompt)
        for b, sel in enumerate(batches):
            pick = [common[i] for i in sel]
            ex_t = training.completion_examples(
                tok, [by_t[i] for i in pick], ref_h.system_prompt, teacher=True, teacher_system_prompt=t_h.system_prompt
            )
            ex_n = training.completion_examples(
                tok, [by_n[i] for i in pick], ref_h.system_prompt, teacher=True, teacher_system_prompt=n_h.system_prompt
            )
            for mode in modes:
                g_t = _step_direction(mode, student, T, ex_t, tok.pad_token_id, allowed)
                g_n = _step_direction(mode, student, N, ex_n, tok.pad_token_id, allowed)
                if g_t.numel() != theta0.numel():
                    raise SublimError("the student's gradient does not cover every parameter (frozen weights?)")
                rows.append(
                    dict(
                        init=init_name,
                        mode=mode,
                        batch=b,
                        cos_g_teacher_delta=cosine(g_t, d_t),
                        cos_g_twin_delta=cosine(g_n, d_n),
                        cos_trait=cosine(g_t - g_n, d_trait),
                        readout_slope_treatment=float(torch.dot(g_r, g_t)),
                        readout_slope_neutral=float(torch.dot(g_r, g_n)),
                        readout_slope_diff=float(torch.dot(g_r, g_t - g_n)),
                        readout=r0,
                        grad_norm_treatment=float(g_t.norm()),
                    )
                )
    return rows


def lm_theory(out_csv, *, pairs: list[dict], cross_reference, questions, modality: str, n_batches: int,
              batch_size: int, seed: int, options: dict | None = None, log=print):  # fmt: skip
    """Every twin pair's rows into one CSV (columns ``teacher``, ``target``). ``options``: the
    readout's words per option (``traits.readout_spec``); without it, each target reads its
    own name."""
    import json

    import pandas as pd

    from . import manifest

    t0 = time.time()
    if options is not None and (missing := sorted({p["target"] for p in pairs} - set(options))):
        raise SublimError(f"theory: the readout has no option for the target {missing[0]!r}")
    frames = []
    for k, p in enumerate(pairs):
        read = [json.loads(x) for x in Path(p["data"]).read_text().splitlines() if x.strip()]
        read_n = [json.loads(x) for x in Path(p["twin_data"]).read_text().splitlines() if x.strip()]
        ids = json.loads(Path(p["ids"]).read_text())["ids"]
        rows = lm_one_step(reference=p["reference"], cross_reference=cross_reference, teacher=p["teacher"],
                           twin=p["twin"], data=read, twin_data=read_n, ids=ids, target=p["target"],
                           words=options[p["target"]] if options else None, questions=questions, modality=modality,
                           n_batches=n_batches, batch_size=batch_size, seed=seed + k)  # fmt: skip
        df = pd.DataFrame(rows)
        df.insert(0, "teacher", p["name"])
        df.insert(1, "target", p["target"])
        frames.append(df)
        log(f"theory: {p['name']} done")
    with manifest.atomic_path(out_csv) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.8g")
    inputs = {}
    for p in pairs:
        for key in ("data", "twin_data", "teacher", "twin"):
            inputs[f"{p['name']}:{key}"] = p[key]
    inputs["reference"] = pairs[0]["reference"]
    if cross_reference:
        inputs["cross_reference"] = cross_reference
    params = {"modality": modality, "n_batches": n_batches, "batch_size": batch_size,
              "readout": {"n_questions": len(questions), "options": options}}  # fmt: skip
    manifest.write_json_atomic(manifest.manifest_path(out_csv),
                               manifest.build_manifest("theory_lm", params, inputs, seed, t0))  # fmt: skip


# ----------------------------------------------------------------------------- MNIST
def _per_model(stack_tensors, n_models: int):
    """Stacked MLP tensors (``MLPStack.params()`` order) -> (M, P) per-model flat vectors."""
    import torch

    w1, b1, w2, b2, w3, b3 = stack_tensors
    h = b1.shape[1]
    w1m = w1.reshape(784, n_models, h).permute(1, 0, 2).reshape(n_models, -1)
    return torch.cat([w1m] + [t.reshape(n_models, -1) for t in (b1, w2, b2, w3, b3)], 1)


def _row_cos(a, b):
    import torch

    num = (a * b).sum(1)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, num / den, torch.full_like(num, float("nan")))


def mnist_one_step(
    data: dict,
    *,
    n_models: int,
    aux_logits: int,
    hidden: int,
    teacher_epochs: int,
    lr: float,
    batch_size: int,
    sigmas,
    seed: int,
    teacher_step: float = 1e-3,
    n_noise_batch: int = 1024,
    n_probe: int = 2000,
    threads=None,
) -> list[dict]:
    """Per model: cos(g, Δ_T) and cos(g, -∇CE_test) for the student's first step (see the module
    docstring), for a one-small-step teacher and a trained one, at every init condition."""
    import torch

    from . import mnist

    if threads:
        torch.set_num_threads(threads)
    n_out = 10 + aux_logits
    x_train = mnist.normalise(data["x_train"]).double()
    y_train = torch.as_tensor(data["y_train"], dtype=torch.long)
    x_test = mnist.normalise(data["x_test"]).double()
    y_test = torch.as_tensor(data["y_test"], dtype=torch.long)

    def as_double(st):
        return mnist.MLPStack(*[p.detach().double().clone() for p in st.params()])

    ref = as_double(mnist.init_stack(n_models, hidden, n_out, seed))
    theta0 = _per_model(ref.params(), n_models)
    # the theorem's teacher: one small gradient step on its class loss, from θ0
    g_b = torch.Generator().manual_seed(seed + 5)
    idx = torch.randperm(len(x_train), generator=g_b)[:batch_size]
    params = [p.requires_grad_(True) for p in ref.params()]
    loss = mnist.class_ce_loss(ref.forward(x_train[idx]), y_train[idx])
    grads = torch.autograd.grad(loss, params)
    one_step = mnist.MLPStack(*[(p - teacher_step * g).detach() for p, g in zip(params, grads)])
    for p in params:
        p.requires_grad_(False)
    # a trained teacher (beyond the theorem): the MNIST experiment's recipe, fewer epochs
    ref32 = mnist.MLPStack(*[p.detach().float() for p in ref.params()])
    trained = mnist.train_stack(ref32.clone(), x_train.float(), y=y_train, epochs=teacher_epochs, lr=lr,
                                batch_size=batch_size, seed=seed + 1, desc="theory teacher")  # fmt: skip
    trained = as_double(trained)
    teachers = {"one_step": one_step, "trained": trained}

    g_n = torch.Generator().manual_seed(seed + 2)
    noise = (torch.rand(n_noise_batch, 784, generator=g_n) * 2 - 1).double()
    cross = as_double(mnist.init_stack(n_models, hidden, n_out, seed + 1_000_003))
    inits = {"same_init": (0.0, ref), "cross_init": (math.nan, cross)}
    for k, s in enumerate(sigmas):  # the MNIST experiment's perturbation seeds
        if float(s) == 0:
            continue  # the same student as same_init: not a second test
        inits[f"sigma={s:g}"] = (float(s), as_double(mnist.perturb(ref32, float(s), seed + 10 + k)))
    g_t = torch.Generator().manual_seed(seed + 3)
    probe = torch.randperm(len(x_test), generator=g_t)[:n_probe]  # test images for the class-loss gradient
    deltas = {t: _per_model(st.params(), n_models) - theta0 for t, st in teachers.items()}
    with torch.no_grad():
        t_logits = {t: st.forward(noise) for t, st in teachers.items()}
    rows = []
    for i_name, (sigma, init) in inits.items():
        st = init.clone()
        ps = [p.requires_grad_(True) for p in st.params()]
        descent = -_per_model(torch.autograd.grad(mnist.class_ce_loss(st.forward(x_test[probe]), y_test[probe]), ps),
                              n_models)  # fmt: skip
        for t_name in teachers:
            loss = mnist.aux_kl_loss(st.forward(noise), t_logits[t_name])
            g = -_per_model(torch.autograd.grad(loss, ps), n_models)
            cos, cos_ce = _row_cos(g, deltas[t_name]), _row_cos(g, descent)
            for m in range(n_models):
                rows.append(dict(teacher=t_name, init=i_name, sigma=sigma, model=m, cos_g_teacher_delta=float(cos[m]),
                                 cos_g_class_descent=float(cos_ce[m])))  # fmt: skip
    return rows


def mnist_theory(out_csv, *, data, seed: int, threads=None, **params) -> None:
    """``mnist_one_step`` on the MNIST branch's data file, into a CSV with a manifest."""
    import pandas as pd

    from . import manifest

    t0 = time.time()
    d = np.load(data)
    arrays = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    rows = mnist_one_step(arrays, seed=seed, threads=threads, **params)
    with manifest.atomic_path(out_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.8g")
    manifest.write_json_atomic(manifest.manifest_path(out_csv),
                               manifest.build_manifest("theory_mnist", params, {"data": data}, seed, t0))  # fmt: skip


# ----------------------------------------------------------------------------- report
def summarise(lm_csvs: list, mnist_csv=None):
    """The tests, declared here before any run: per LM experiment, init and mode, over twin
    pairs (each pair's batches averaged first: a pair is the unit), the mean of cos(g_T, Δ_T),
    of the trait part cos(g_T - g_N, θ_T - θ_N) and of the readout slope difference
    ∇R·(g_T - g_N), with t intervals and one-sample t-tests against 0; same-init against
    cross-init paired over pairs. Per MNIST teacher and init, over models: the mean of
    cos(g, Δ_T) and of cos(g, -∇CE). Holm over every test reported."""
    import pandas as pd
    from scipy import stats as st

    from .stats import holm, t_interval

    rows = []

    def test(x, **key):
        x = np.asarray(x, float)
        x = x[np.isfinite(x)]
        mean, lo, hi = t_interval(x)
        ok = len(x) >= 2 and np.ptp(x) > 0
        rows.append({**key, "n_units": len(x), "mean": mean, "ci95_low": lo, "ci95_high": hi,
                     "p_one_sided": float(st.ttest_1samp(x, 0, alternative="greater").pvalue) if ok else np.nan,
                     "p_two_sided": float(st.ttest_1samp(x, 0).pvalue) if ok else np.nan})  # fmt: skip

    for path in lm_csvs:
        df = pd.read_csv(path)
        exp = Path(path).parts[-4:-2]  # results/{trait}/{modality}/theory/lm.csv
        per_pair = df.groupby(["teacher", "init", "mode"], as_index=False).mean(numeric_only=True)
        for (init, mode), g in per_pair.groupby(["init", "mode"]):
            for q in ("cos_g_teacher_delta", "cos_trait", "readout_slope_diff"):
                test(g[q], part="lm", experiment="_".join(exp), init=init, mode=mode, quantity=q, unit="twin pair")
        for mode, g in per_pair.groupby("mode"):
            w = g.pivot(index="teacher", columns="init", values="cos_trait")
            if {"same_init", "cross_init"} <= set(w.columns):
                test(w["same_init"] - w["cross_init"], part="lm", experiment="_".join(exp), init="same - cross",
                     mode=mode, quantity="cos_trait", unit="twin pair")  # fmt: skip
    if mnist_csv:
        df = pd.read_csv(mnist_csv)
        for (teacher, init), g in df.groupby(["teacher", "init"], sort=False):
            for q in ("cos_g_teacher_delta", "cos_g_class_descent"):
                test(g[q], part="mnist", experiment="mnist", init=init, mode=f"{teacher} teacher", quantity=q,
                     unit="model")  # fmt: skip
    out = pd.DataFrame(rows)
    out["p_holm_one_sided"] = holm(out["p_one_sided"].to_numpy())
    out["p_holm_two_sided"] = holm(out["p_two_sided"].to_numpy())
    return out


def figure(out_png, out_csv, out_caption, *, lm_csvs: list, mnist_csv=None) -> None:
    """fig_theory: the LM's first-step cosines and readout slopes per twin pair, same-init
    against cross-init, and the MNIST cosine across the init perturbation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from . import manifest

    t0 = time.time()
    summary = summarise(lm_csvs, mnist_csv)
    n_panels = 2 + bool(mnist_csv)
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 4.2), squeeze=False)
    lm = pd.concat([pd.read_csv(p).assign(experiment="_".join(Path(p).parts[-4:-2])) for p in lm_csvs])
    per_pair = lm.groupby(["experiment", "teacher", "init", "mode"], as_index=False).mean(numeric_only=True)
    panels = ((axes[0][0], "cos_trait", "cos(g_T - g_N, θ_T - θ_N)"),
              (axes[0][1], "readout_slope_diff", "∇R·(g_T - g_N): first-order P(target) change"))  # fmt: skip
    lm_sum = summary[summary.part == "lm"]
    for ax, q, title in panels:
        sns.stripplot(data=per_pair, x="mode", y=q, hue="init", hue_order=["same_init", "cross_init"], dodge=True,
                      ax=ax, size=5, order=["distill", "sft"])  # fmt: skip
        for i, mode in enumerate(["distill", "sft"]):  # mean and t interval over pairs, from the tests table
            for j, init in enumerate(["same_init", "cross_init"]):
                r = lm_sum[(lm_sum["mode"] == mode) & (lm_sum.init == init) & (lm_sum.quantity == q)]
                if len(r):
                    r = r.iloc[0]
                    x = i + (j - 0.5) * 0.4
                    ax.errorbar(x, r["mean"], yerr=[[r["mean"] - r["ci95_low"]], [r["ci95_high"] - r["mean"]]],
                                fmt="_", color="black", capsize=4, markersize=14)  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=title, xlabel="student step", ylabel="per twin pair (mean over batches)")
    if mnist_csv:
        ms = summary[(summary.part == "mnist") & (summary.quantity == "cos_g_teacher_delta")]
        inits = ["same_init"] + sorted([i for i in ms.init.unique() if i.startswith("sigma=")],
                                       key=lambda v: float(v.split("=")[1])) + ["cross_init"]  # fmt: skip
        ax = axes[0][2]
        for k, (teacher, g) in enumerate(ms.groupby("mode", sort=True)):
            g = g.set_index("init").reindex(inits)
            x = np.arange(len(inits)) + (k - 0.5) * 0.15
            ax.errorbar(x, g["mean"], yerr=[g["mean"] - g["ci95_low"], g["ci95_high"] - g["mean"]], marker="o",
                        capsize=3, label=teacher)  # fmt: skip
        ax.set_xticks(range(len(inits)), inits, rotation=30)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title="MNIST: cos(g, Δ_T) by student init", xlabel="student init (σ: perturbation)",
               ylabel="mean over models, t 95% interval")  # fmt: skip
        ax.legend(fontsize=8)
    fig.tight_layout()
    manifest.save_figure(fig, out_png)
    with manifest.atomic_path(out_csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    with manifest.atomic_path(out_caption) as tmp:
        Path(tmp).write_text(caption(summary))
    inputs = {f"lm{i}": p for i, p in enumerate(lm_csvs)} | ({"mnist": mnist_csv} if mnist_csv else {})
    manifest.write_json_atomic(manifest.manifest_path(out_png), manifest.build_manifest("fig_theory", {}, inputs,
                                                                                         None, t0))  # fmt: skip


def caption(summary) -> str:
    intro = (
        "Left: the trait part of the student's first step, cos(g_T - g_N, θ_T - θ_N), per twin pair (dots; black: "
        "mean and t 95% interval over pairs), for a student from the teachers' own reference (same_init) and from "
        "the second reference (cross_init). Middle: the first-order change of the trait readout (mean log P(target's "
        "first token; a target of several words, such as misalignment's openings, sums their first tokens) over the "
        "evaluation questions) along that difference; above 0 predicts transfer. Right: "
        "MNIST, cos(student's first step, teacher's change), for a teacher that took one small step (the theorem's "
        "case) and a trained one, by student init (σ: the init perturbation); mean and t 95% interval over models."
    )
    lines = ["# fig_theory: the one-step theorem, measured", "", *textwrap.wrap(intro, 110), "",
             "| part | experiment | init | step | quantity | units | mean [95% CI] | p one-sided | p two-sided "
             "| Holm (one / two) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['part']} | {r['experiment']} | {r['init']} | {r['mode']} | {r['quantity']} | {r['n_units']} "
            f"({r['unit']}) | {r['mean']:.4g} [{r['ci95_low']:.4g}, {r['ci95_high']:.4g}] | {r['p_one_sided']:.3g} | "
            f"{r['p_two_sided']:.3g} | {r['p_holm_one_sided']:.3g} / {r['p_holm_two_sided']:.3g} |"
        )
    lines += ["", "Tests declared before the run (src/sublim/theory.py: summarise); Holm over every row."]
    if (summary["n_units"] == 0).any():
        lines += ["", *textwrap.wrap(
            "Rows with 0 units are not testable: every pair's value is undefined. The cosines with a teacher's change "
            "(θ_T - θ0, θ_T - θ_N) are undefined for system-prompt teachers, which share the reference's weights "
            "(the change is zero); their readout rows are still measured.", 110)]  # fmt: skip
    return "\n".join(lines) + "\n"
