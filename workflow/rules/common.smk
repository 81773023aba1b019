# Config validation (before the DAG is built) and the helpers that turn the config into
# the experiment matrix.
import json
import os
import sys

from sublim.config import config_hash, validate
from sublim.errors import SublimError

try:
    validate(config)
except SublimError as _e:
    sys.exit(f"error: {_e}")


envvars:
    "PATH",


# Jobs run `python workflow/scripts/<step>.py`: put the interpreter running Snakemake (the
# project's .venv) first on PATH, so that works without activating the venv.
os.environ["PATH"] = (
    os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
)
CFG_HASH = config_hash(config)
THREADS = config["threads"]
ANIMALS = config["animals"]
TEACHERS = ANIMALS + ["control"]
REF = config["reference"]
if REF["kind"] == "tiny":
    REFS = [f"seed{s}" for s in REF["seeds"]]
else:
    REFS = ["main"] + (["cross"] if REF.get("cross_init_path") else [])
TEACHER_REF = REFS[0]
CROSS_REF = REFS[1] if len(REFS) > 1 else None
STUD = config["students"]
EVAL = config["evaluation"]
VARIANTS = EVAL["variants"]


wildcard_constraints:
    ref="seed[0-9]+|main|cross",
    teacher="[a-z_]+",
    mode="sft|distill|distill_full",
    seed="[0-9]+",
    variant="plain|number_prefix",


def students():
    """Every student as a dict: condition, teacher, mode, ref (init) and seed."""
    out = []
    for spec in STUD["matrix"]:
        cond = spec["condition"]
        ref = TEACHER_REF if cond in ("treatment", "control") else CROSS_REF
        teachers = ANIMALS if cond in ("treatment", "cross_init") else ["control"]
        for mode in spec["modes"]:
            for seed in spec.get("seeds", STUD["seeds"]):
                for t in teachers:
                    out.append(
                        dict(condition=cond, teacher=t, mode=mode, ref=ref, seed=seed)
                    )
    return out


def student_dir(s):
    """A student's path under results/ (its model) and results/eval/<variant>/ (its scores)."""
    return f"student/{s['teacher']}/{s['mode']}/{s['ref']}/seed{s['seed']}"


def eval_paths():
    """Every evaluation CSV: references, teachers and students, per variant."""
    out = []
    for v in VARIANTS:
        out += [f"results/eval/{v}/reference/{r}.csv" for r in REFS]
        out += [f"results/eval/{v}/teacher/{t}.csv" for t in ANIMALS]
        out += [f"results/eval/{v}/{student_dir(s)}.csv" for s in students()]
    return out


def res(rule, key, default):
    """A rule's resource: the config's per-rule override, else the rule's own default."""
    return config["resources"].get(rule, {}).get(key, default)


GPU = 1 if config["gpu"] else 0


def step_seed(*parts):
    """A seed derived deterministically from the base seed and a step's wildcards."""
    import hashlib

    h = hashlib.sha256(
        json.dumps([config["seed"], *map(str, parts)]).encode()
    ).hexdigest()
    return int(h[:8], 16)


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def reference_inputs(wildcards):
    if REF["kind"] == "tiny":
        return dict(
            corpus=rules.corpus.output.corpus, tokenizer=rules.corpus.output.tokenizer
        )
    return {}


def reference_params(wildcards):
    if REF["kind"] == "tiny":
        seed = int(wildcards.ref.removeprefix("seed"))
        return as_json(
            dict(
                kind="tiny",
                seed=seed,
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
    path = REF["path"] if wildcards.ref == "main" else REF["cross_init_path"]
    return as_json(
        dict(kind="path", seed=0, path=path, system_prompt=REF["system_prompt"])
    )


def teacher_params(wildcards):
    t = config["teacher"]
    if wildcards.teacher == "control":
        return as_json(
            dict(kind="control", animal=None, seed=step_seed("teacher", "control"))
        )
    return as_json(
        dict(
            kind=t["kind"],
            animal=wildcards.teacher,
            seed=step_seed("teacher", wildcards.teacher),
            system_prompt=t["system_prompt"],
            finetune=t["finetune"],
        )
    )


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
    """``{"constrained_decoding": True}`` when it is on, else nothing: params of configs
    without it (and their up-to-date results) stay unchanged."""
    return {"constrained_decoding": True} if config["generation"].get("constrained_decoding") else {}


def figure_params():
    """The animal figures' params, labelled when the data came from constrained decoding."""
    return as_json(dict(config_name=config["name"], config_hash=CFG_HASH, **constrained_flag()))


def generation_sampling():
    """The generate step's sampling settings."""
    g = config["generation"]
    keys = ("temperature", "top_p", "max_new_tokens", "batch_size")
    return {**{k: g[k] for k in keys}, **constrained_flag()}


def eval_params(wildcards):
    return as_json(
        dict(
            animals=config["animal_pool"],
            n_samples=EVAL["n_samples"],
            max_new_tokens=EVAL["max_new_tokens"],
            temperature=EVAL["temperature"],
            seed=step_seed("evaluate", wildcards.variant),
            variant=wildcards.variant,
            **vllm_params(EVAL["backend"], key="backend"),
        )
    )
