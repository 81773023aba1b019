"""The audit's transfer test: does training on DATA move a student toward the trait?

The paper's advice is to test a distillation pipeline for trait transfer, not only to look
at the data. ``sublim audit --transfer TARGET`` does that for any two data sets: per probe
seed it trains one student from the reference on DATA and one on CONTROL (the same prompt
ids, drawn by the seed; the same recipe, the config's ``students.train``), scores both with
the trait's evaluation, and tests the per-seed difference in the trait readout with a paired
t-test over the seeds (each probe student counted once; one- and two-sided p). Inside the
workflow the students of the design table are this test (``audit_table``'s transfer rows);
this is for data sets from elsewhere.

Students are written under ``WORK`` (``OUT.probe`` by default), one directory each; a kill
resumes: a finished student whose manifest records the same data, reference and parameters
is kept, a half-trained one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .errors import SublimError


def load_config(path) -> dict:
    """A sublim config file, validated (its trait settings, evaluation and students.train)."""
    import yaml

    from .config import validate

    p = Path(path)
    if not p.is_file():
        raise SublimError(f"the transfer test needs a sublim config (--config): no file at {p}")
    return validate(yaml.safe_load(p.read_text()) or {})


def _reusable(out: Path, params: dict, inputs: dict) -> bool:
    """A finished student from an earlier (killed) run, made from exactly these inputs."""
    from . import manifest

    mpath = out / manifest.MANIFEST
    if not mpath.is_file():
        return False
    m = json.loads(mpath.read_text())
    if m.get("params") != params:
        return False
    return all(m["inputs"].get(k, {}).get("sha256") == manifest.sha256_path(v) for k, v in inputs.items())


DEFAULT_SEEDS = 5  # a sign-flip permutation over 5 pairs can reach 1/32; over 3, only 1/8


def check_settings(*, config, target=None, mode: str = "sft", seeds: int = DEFAULT_SEEDS, modality=None,
                   teacher=None, control_teacher=None, **_) -> dict:  # fmt: skip
    """The transfer test's settings, checked before anything runs (one line each): returns the
    config, the trait, its target and the data's modality."""
    from .modalities import MODALITIES
    from .traits import get_trait

    cfg = load_config(config)
    if len({e["trait"] for e in cfg["experiments"]}) > 1:
        raise SublimError(f"the transfer test reads one trait; the experiments of {config} have several")
    trait_name = cfg["experiments"][0]["trait"]
    trait = get_trait(trait_name)
    targets = trait.pool(cfg)
    target = target or (trait.targets(cfg)[0] if len(trait.targets(cfg)) == 1 else None)
    if target is None or target not in targets:
        raise SublimError(f"--transfer TARGET names the trait's target: one of {targets} (trait {trait_name}), "
                          f"not {target!r}")  # fmt: skip
    from .training import MODES

    if mode not in MODES or mode == "lm":
        raise SublimError(f"--transfer-mode must be one of {[m for m in MODES if m != 'lm']}, not {mode!r}")
    if mode != "sft" and not (teacher and control_teacher):
        raise SublimError(
            f"--transfer-mode {mode} distils each side's own teacher: give --teacher and --control-teacher"
        )
    if seeds < 2:
        raise SublimError(f"--transfer-seeds must be at least 2 (a paired test over probe seeds), not {seeds}")
    modality = modality or cfg["experiments"][0]["modality"]
    if modality not in MODALITIES:
        raise SublimError(f"--transfer-modality must be one of {sorted(MODALITIES)}, not {modality!r}")
    return {"cfg": cfg, "trait": trait_name, "target": target, "modality": modality}


def transfer_test(data, control, *, reference, config, target=None, mode: str = "sft", seeds: int = DEFAULT_SEEDS,
                  subsample: int | None = None, modality=None, teacher=None, control_teacher=None, work_dir,
                  threads=None, allow_mismatch: bool = False, log=print) -> dict:  # fmt: skip
    """Probe students on DATA against CONTROL; returns the test's summary (see the module)."""
    import pandas as pd

    from . import steps
    from .audit import pair
    from .design import step_seed
    from .report import METRICS, per_question
    from .stats import paired_contrast
    from .traits import get_trait

    t0 = time.time()
    st = check_settings(config=config, target=target, mode=mode, seeds=seeds, modality=modality, teacher=teacher,
                        control_teacher=control_teacher)  # fmt: skip
    cfg, trait_name, target, modality = st["cfg"], st["trait"], st["target"], st["modality"]
    trait = get_trait(trait_name)
    p = pair(data, control, allow_mismatch=allow_mismatch)
    common = sorted({r["id"] for r in p["data"]} & {r["id"] for r in p["control"]})
    if not common:
        raise SublimError(f"{data} and {control} share no prompt id: the probe students need the same prompts")
    # the workflow's examples per student for this modality (code.subsample / cot.subsample)
    n = min(subsample or (cfg.get(modality) or {}).get("subsample") or cfg["filter"]["subsample"], len(common))
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ids_json = work / "prompt_ids.json"
    ids_json.write_text(json.dumps({"ids": common}) + "\n")
    side_teacher = {"data": teacher or reference, "control": control_teacher or reference}
    paths = {}
    for s in range(seeds):
        sub_seed = step_seed(cfg["seed"], "probe", s)
        for side, path in (("data", data), ("control", control)):
            out = work / f"{side}_seed{s}"
            params = steps.student_params(modality=modality, mode=mode, method="full", train=cfg["students"]["train"],
                                          lora=None, subsample=n, subsample_seed=sub_seed)  # fmt: skip
            inputs = {"reference": reference, "teacher": side_teacher[side], "data": path, "ids": ids_json}
            if not _reusable(out, params, inputs):
                log(f"transfer test: probe student {side} seed {s} ({n} examples, {mode})")
                steps.train_student(out, reference=reference, teacher=side_teacher[side], data=path, ids=ids_json,
                                    modality=modality, mode=mode, seed=s, subsample=n, subsample_seed=sub_seed,
                                    train=cfg["students"]["train"], threads=threads,
                                    checkpoint_dir=work / "checkpoints" / out.name)  # fmt: skip
            paths[f"{side}_seed{s}"] = str(out)
    ev = cfg["evaluation"]
    eval_csv = work / "evaluation.csv"
    log(f"transfer test: scoring {len(paths)} probe students")
    steps.evaluate(eval_csv, models=paths, trait=trait_name, trait_params=trait.eval_params(cfg),
                   n_samples=ev["n_samples"], temperature=ev["temperature"], seed=step_seed(cfg["seed"], "probe-eval"),
                   max_new_tokens=ev["max_new_tokens"], threads=threads)  # fmt: skip
    scored = per_question(pd.read_csv(eval_csv))
    scored = scored[scored["animal"] == target]
    per_model = scored.groupby("model_id")[list(METRICS)].mean()
    metric = "p" if per_model["p"].notna().any() else "rate"
    d = np.array([per_model.loc[f"data_seed{s}", metric] for s in range(seeds)])
    c = np.array([per_model.loc[f"control_seed{s}", metric] for s in range(seeds)])
    r = paired_contrast(d, c, seed=cfg["seed"])
    return {
        "trait": trait_name,
        "target": target,
        "mode": mode,
        "metric": metric,
        "seeds": seeds,
        "modality": modality,
        "examples_per_student": n,
        "shared_prompts": len(common),
        "per_seed": [{"seed": s, "data": float(d[s]), "control": float(c[s])} for s in range(seeds)],
        "data_mean": float(d.mean()),
        "control_mean": float(c.mean()),
        "estimate": r["estimate"],
        "ci95": [r["ci_lo"], r["ci_hi"]],
        "p_one_sided": r["p_one_sided"],
        "p_two_sided": r["p_two_sided"],
        "test": "paired t over probe seeds (a DATA student and a CONTROL student per seed, same prompts)",
        "config": str(config),
        "students": paths,
        "seconds": round(time.time() - t0, 2),
    }


def transferred(t: dict, alpha: float = 0.05) -> bool:
    """The transfer test's decision: DATA's probe students shifted toward the target at
    one-sided p < alpha."""
    return bool(t["p_one_sided"] < alpha)


def verdict_line(t: dict, alpha: float = 0.05) -> str:
    est, (lo, hi) = t["estimate"], t["ci95"]
    what = (
        f"{t['metric']}({t['target']}) DATA - CONTROL {est:+.4g} [{lo:+.4g}, {hi:+.4g}] over {t['seeds']} probe seeds"
    )
    if transferred(t, alpha):
        return f"transfer test: TRANSFER toward {t['target']}: {what}, one-sided p {t['p_one_sided']:.3g}"
    if t["p_two_sided"] < alpha and est < 0:
        return f"transfer test: a shift AWAY from {t['target']}: {what}, two-sided p {t['p_two_sided']:.3g}"
    return f"transfer test: no transfer found: {what}, one-sided p {t['p_one_sided']:.3g}"
