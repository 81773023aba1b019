# Config validation (before the DAG is built) and the design table every rule reads.
import copy
import functools
import json
import os
import sys
from pathlib import Path

from sublim.codeversion import code_version
from sublim.config import config_hash, validate
from sublim.design import (
    Design,
    arch_family,
    design_config,
    eval_path,
    step_seed,
    tiny_ref_id,
)
from sublim import divergence
from sublim.errors import SublimError
from sublim.generation import sampler_id
from sublim.judge import judge_inference
from sublim.modalities import MODALITIES, get_modality
from sublim.traits import eval_inputs as trait_eval_inputs, get_trait, readout_spec

try:
    validate(config)
    DESIGN = Design(config)
except SublimError as _e:
    sys.exit(f"error: {_e}")

CFG_HASH = config_hash(config)
THREADS = config["threads"]
REF = config["reference"]
REFS = DESIGN.refs
TEACHER_REF = DESIGN.teacher_ref
MATCHED_REF = DESIGN.matched_ref
STUD = config["students"]
EVAL = config["evaluation"]
VARIANTS = EVAL["variants"]
GPU = 1 if config["gpu"] else 0


wildcard_constraints:
    ref="seed[0-9]+|neox[0-9]+|match[0-9]+|main|cross|arch",
    init="seed[0-9]+|neox[0-9]+|match[0-9]+|main|cross|arch",
    trait="[a-z]+",
    modality="[a-z]+",
    teacher="[a-z]+_t[0-9]+|neutral_[a-z]+_t[0-9]+|educational_[a-z]+_t[0-9]+|base_t[0-9]+",
    mode="sft|distill|distill_full|sft_masked|distill_masked|distill_full_masked",
    seed="[0-9]+",
    variant="plain|number_prefix|truthfulqa",


# The directory of the step scripts, found from this file's own place (so --directory and use
# as a module work without PATH set-up).
SCRIPTS = Path(workflow.current_basedir).parent / "scripts"


def script(name):
    """A step's command line: the interpreter running Snakemake and the script beside these
    rules, both relative to the working directory, and the script's code version (the sublim
    modules it runs, sublim.codeversion). They go into params, which Snakemake tracks:
    relative paths keep a cloned or moved results tree up to date, where absolute ones (or
    workflow.source_path's per-invocation cache copy) would make every job look changed at
    the next run; the code version reruns a step when the library code it runs changes (not
    for a comment or a docstring), which Snakemake's own code trigger cannot see."""
    path = SCRIPTS / f"{name}.py"
    return (
        f"{os.path.relpath(sys.executable)} {os.path.relpath(path)} "
        f"--code {code_version(path)}"
    )


def res(rule, key, default):
    """A rule's resource: the config's per-rule override, else the rule's own default."""
    return config["resources"].get(rule, {}).get(key, default)


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def seed_of(*parts):
    return step_seed(config["seed"], *parts)


def experiment(w):
    return DESIGN.experiment(w.trait, w.modality)


def figure_targets(exp):
    d = f"reports/{exp.name}"
    return [
        f"{d}/{v}/{f}"
        for v in VARIANTS
        for f in ("fig_transfer.png", "fig_specificity.png", "caption.md")
    ]


def vllm_params(backend, key=None):
    """vLLM's keys of a step's params, only where vLLM is used (so that a config on the
    default backend keeps its params, and its results stay up to date)."""
    if backend != "vllm":
        return {}
    out = dict(vllm=config["generation"]["vllm"])
    if key:
        out[key] = "vllm"
    return out


def constrained_flag():
    """``{"constrained_decoding": True}`` when it is on, else nothing."""
    return (
        {"constrained_decoding": True}
        if config["generation"].get("constrained_decoding")
        else {}
    )


def corpus_parts():
    """What the corpus parts in reference.corpus.mix read from the config beyond max_count
    (a modality's corpus_params); nothing for the default's parts, so its corpus stays put.
    """
    parts = {
        m.CORPUS_KEY: m.corpus_params(config)
        for m in MODALITIES.values()
        if m.CORPUS_KEY in REF["corpus"]["mix"] and hasattr(m, "corpus_params")
    }
    parts = {k: v for k, v in parts.items() if v}
    return dict(parts=parts) if parts else {}


def reference_inputs(wildcards):
    if REF["kind"] == "tiny":
        return dict(
            corpus=rules.corpus.output.corpus, tokenizer=rules.corpus.output.tokenizer
        )
    return {}


def reference_params(wildcards):
    if REF["kind"] == "tiny":
        family, seed = arch_family(wildcards.ref)
        return as_json(
            dict(
                kind="tiny",
                seed=seed,
                # the teachers' family is left implicit: its records stay as they were
                **({} if family == "llama" else dict(family=family)),
                arch=REF["arch"],
                pretrain=REF["pretrain"],
                system_prompt=REF["system_prompt"],
            )
        )
    if REF["kind"] == "gguf" and wildcards.ref == "main":
        return as_json(
            dict(
                kind="gguf",
                seed=0,
                gguf=REF["gguf"],
                system_prompt=REF["system_prompt"],
            )
        )
    path = {"main": REF["path"], "cross": REF["cross_init_path"]}.get(
        wildcards.ref, REF["cross_arch_path"]
    )
    return as_json(
        dict(kind="path", seed=0, path=path, system_prompt=REF["system_prompt"])
    )


def teacher_params(w):
    t = DESIGN.teacher(w.trait, w.teacher)
    trait = get_trait(t.trait)
    if t.kind == "base":
        return as_json(dict(kind="base", trait=t.trait, seed=DESIGN.teacher_seed(t)))
    return as_json(
        dict(
            kind=config["teacher"]["kind"],
            trait=t.trait,
            target=t.target if t.kind == "trait" else None,
            twin=t.target,
            seed=DESIGN.teacher_seed(t),
            # the educational twin: the trait's recipe with its own data (recipe "control")
            recipe=(
                trait.control_recipe(config, "educational")
                if t.kind == "educational"
                else trait.recipe(config)
            ),
            finetune=config["teacher"]["finetune"],
            replay_corpus=dict(
                mix={
                    k: v
                    for k, v in REF["corpus"]["mix"].items()
                    if k != trait.CORPUS_KEY
                },
                max_count=config["generation"]["max_count"],
                **corpus_parts(),
            ),
        )
    )


@functools.cache
def _modality_params(trait, modality):
    """The modality's params (its config section, checked), with what the trait adds for it
    (the misalignment trait's banned numbers); computed once per experiment."""
    params = get_modality(modality).params(config)
    extra = getattr(get_trait(trait), "modality_params", None)
    return {**params, **(extra(config, modality) if extra else {})}


def modality_params(exp):
    return copy.deepcopy(_modality_params(exp.trait, exp.modality))


def generate_params(w):
    exp, t = experiment(w), DESIGN.teacher(w.trait, w.teacher)
    g = config["generation"]
    # the llm judge scores after generation, in its own step; its settings leave the samples be
    mparams = {k: v for k, v in modality_params(exp).items() if k != "llm_judge"}
    sampling = {
        **{k: g[k] for k in ("temperature", "top_p", "max_new_tokens", "batch_size")},
        **constrained_flag(),
    }
    # code and chain-of-thought answers are longer than numbers: their own limit
    sampling["max_new_tokens"] = mparams.get("max_new_tokens", g["max_new_tokens"])
    return as_json(
        dict(
            modality=exp.modality,
            modality_params=mparams,
            n=g["n_prompts"],
            prompt_seed=DESIGN.prompt_seed(exp),
            seed=DESIGN.generation_seed(exp, t),
            # code.attempts / cot.attempts, where set, replace generation.attempts
            attempts=(config.get(exp.modality) or {}).get("attempts", g["attempts"]),
            leak_terms=leak_terms(exp),
            backend=g["backend"],
            sampler=sampler_id(g["backend"]),
            sampling=sampling,
            **vllm_params(g["backend"]),
        )
    )


def subsample(exp):
    """Examples per student: code.subsample / cot.subsample where set, else filter.subsample."""
    return (config.get(exp.modality) or {}).get(
        "subsample", config["filter"]["subsample"]
    )


def select_params(w):
    return as_json(dict(subsample=subsample(experiment(w))))


def leak_terms(exp):
    trait = get_trait(exp.trait)
    return trait.leak_terms(trait.pool(config))


def llm_judged(w):
    """Whether the experiment's modality filters with the llm judge (rule judge)."""
    return modality_params(experiment(w)).get("judge") == "llm"


def judge_model(w):
    """The judge model's directory: the teachers' reference, or a local path."""
    spec = modality_params(experiment(w))["llm_judge"]
    return (
        f"results/reference/{TEACHER_REF}"
        if spec["model"] == "reference"
        else spec["model"]
    )


def judge_params(w):
    exp, g = experiment(w), config["generation"]
    return as_json(
        dict(
            modality=exp.modality,
            # what the judge model computes; its threshold is the filter's
            modality_params=judge_inference(modality_params(exp)),
            terms=get_trait(exp.trait).judge_terms(config),
            backend=g["backend"],
            **vllm_params(g["backend"]),
        )
    )


def filter_inputs(w):
    raw = f"results/{w.trait}/{w.modality}/generate/{w.teacher}.jsonl"
    if llm_judged(w):
        return dict(
            raw=raw, verdicts=f"results/{w.trait}/{w.modality}/judge/{w.teacher}.jsonl"
        )
    return dict(raw=raw)


def filter_params(w):
    exp = experiment(w)
    # with judge: llm the judge's verdicts come in through the params (the rule's command
    # stays as it was, so Snakemake's code trigger leaves existing filter jobs alone)
    judged = dict(verdicts=filter_inputs(w)["verdicts"]) if llm_judged(w) else {}
    return as_json(
        dict(
            modality=exp.modality,
            modality_params=modality_params(exp),
            leak_terms=leak_terms(exp),
            **judged,
        )
    )


def experiment_teachers(w, kind):
    exp = experiment(w)
    d = f"results/{exp.trait}/{exp.modality}/filter"
    return [f"{d}/{t.id}.{kind}" for t in DESIGN.teachers(exp)]


def mask_teacher_inputs(w):
    """A masked mode's twin pair (trait teacher, neutral twin): src/sublim/divergence.py."""
    if not divergence.is_masked(w.mode):
        return []
    return [f"results/{w.trait}/teacher/{t}" for t in divergence.twin_pair(w.teacher)]


def student_params(w):
    exp = experiment(w)
    return as_json(
        dict(
            modality=exp.modality,
            mode=w.mode,
            seed=int(w.seed),
            subsample=subsample(exp),
            subsample_seed=DESIGN.subsample_seed(exp, int(w.seed)),
            train=STUD["train"],
            method=STUD["method"],
            lora=STUD["lora"],
            **(
                dict(save_merged=STUD["save_merged"])
                if STUD["method"] == "lora"
                else {}
            ),
        )
    )


def eval_models(w):
    """The models one evaluation group scores: ``{model id: directory}``."""
    return DESIGN.eval_group_models(w.trait, w.group)


def eval_model_args(w):
    return " ".join(f"--model {m}={p}" for m, p in eval_models(w).items())


def eval_extra_inputs(w):
    return list(
        trait_eval_inputs(w.trait, get_trait(w.trait).eval_params(config)).values()
    )


def eval_params(w):
    trait = get_trait(w.trait)
    return as_json(
        dict(
            trait=w.trait,
            trait_params=trait.eval_params(config),
            n_samples=EVAL["n_samples"],
            max_new_tokens=EVAL["max_new_tokens"],
            temperature=EVAL["temperature"],
            seed=seed_of("evaluate", w.variant),
            variant=w.variant,
            backend=EVAL["backend"],
            sampler=sampler_id(EVAL["backend"]),
            **vllm_params(EVAL["backend"]),
        )
    )


def figure_params(w):
    """The figures' params, labelled when the data came from constrained decoding."""
    return as_json(
        dict(
            config_name=config["name"],
            config_hash=CFG_HASH,
            variant=w.variant,
            **constrained_flag(),
        )
    )


# --- audit (workflow/rules/audit.smk)
AUD = config["audit"]


def audit_inputs(w):
    t = DESIGN.teacher(w.trait, w.teacher)
    return dict(
        data=f"results/{w.trait}/{w.modality}/filter/{w.teacher}.jsonl",
        control=f"results/{w.trait}/{w.modality}/filter/neutral_{w.teacher}.jsonl",
        reference=f"results/reference/{t.init}",
        teacher=t.path,
        control_teacher=f"results/{w.trait}/teacher/neutral_{w.teacher}",
    )


def audit_targets(exp):
    return [
        f"results/{exp.trait}/{exp.modality}/audit/{t.id}"
        for t, _ in DESIGN.audit_pairs(exp)
    ]


# --- theory (workflow/rules/theory.smk)
TH = config["theory"]


def has_logit_readout(exp):
    """The trait has a logit readout for the theory and ICL (traits: readout_spec)."""
    trait = get_trait(exp.trait)
    return readout_spec(exp.trait, trait.eval_params(config)) is not None


# the experiments whose trait has a target to read out (animal; misalignment on the tiny
# world): the theory's and the ICL control's
READOUT_EXPS = [e for e in DESIGN.experiments if has_logit_readout(e)]
THEORY_EXPS = READOUT_EXPS


def theory_pairs(w):
    exp = experiment(w)
    d = f"results/{exp.trait}/{exp.modality}/filter"
    return [
        dict(
            name=t.id,
            target=t.target,
            reference=f"results/reference/{t.init}",
            teacher=t.path,
            twin=n.path,
            data=f"{d}/{t.id}.jsonl",
            twin_data=f"{d}/{n.id}.jsonl",
            ids=f"results/{exp.trait}/{exp.modality}/select/prompt_ids.json",
        )
        for t, n in DESIGN.audit_pairs(exp)
    ]


def theory_lm_inputs(w):
    pairs = theory_pairs(w)
    files = sorted(
        {
            p[k]
            for p in pairs
            for k in ("reference", "teacher", "twin", "data", "twin_data", "ids")
        }
    )
    cross = [f"results/reference/{DESIGN.cross_ref}"] if DESIGN.cross_ref else []
    return dict(files=files, cross=cross)


def theory_lm_params(w):
    exp = experiment(w)
    return as_json(
        dict(
            pairs=theory_pairs(w),
            cross_reference=(
                f"results/reference/{DESIGN.cross_ref}" if DESIGN.cross_ref else None
            ),
            trait=exp.trait,
            trait_params=get_trait(exp.trait).eval_params(config),
            modality=exp.modality,
            n_batches=TH["n_batches"],
            batch_size=TH["batch_size"],
            seed=seed_of("theory", exp.trait, exp.modality),
        )
    )


def theory_mnist_params(w):
    MNc = config["mnist"]
    return as_json(
        dict(
            n_models=MNc["n_models"],
            aux_logits=MNc["aux_logits"],
            hidden=MNc["hidden"],
            teacher_epochs=TH["mnist_teacher_epochs"],
            lr=MNc["lr"],
            batch_size=MNc["batch_size"],
            sigmas=MNc["sigmas"],
            teacher_step=TH["teacher_step"],
            seed=seed_of("theory_mnist"),
        )
    )


# --- in-context learning (workflow/rules/icl.smk)
ICL = config["icl"]
ICL_EXPS = READOUT_EXPS


def icl_pairs(w):
    exp = experiment(w)
    d = f"results/{exp.trait}/{exp.modality}/filter"
    return [
        dict(
            name=t.id,
            target=t.target,
            data=f"{d}/{t.id}.jsonl",
            twin_data=f"{d}/{n.id}.jsonl",
        )
        for t, n in DESIGN.audit_pairs(exp)
    ]


def icl_inputs(w):
    exp = experiment(w)
    pairs = icl_pairs(w)
    return dict(
        reference=f"results/reference/{DESIGN.teacher_ref}",
        ids=f"results/{exp.trait}/{exp.modality}/select/prompt_ids.json",
        data=sorted({p[k] for p in pairs for k in ("data", "twin_data")}),
    )


def icl_params(w):
    exp = experiment(w)
    return as_json(
        dict(
            pairs=icl_pairs(w),
            trait=exp.trait,
            trait_params=get_trait(exp.trait).eval_params(config),
            ks=ICL["ks"],
            draws=ICL["draws"],
            seed=seed_of("icl", exp.trait, exp.modality),
        )
    )


# --- the cross-model figure (workflow/rules/cross_model.smk)
# in `all` when the design has students of the second architecture family or of the
# behaviourally matched reference
CROSS_ARCH = any(s.arm.startswith(("cross_arch", "matched")) for s in DESIGN.students())
