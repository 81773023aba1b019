"""Derive ``dvc.yaml`` from the Snakemake DAG, so the pipeline graph is written only once.

One DVC stage per Snakemake job (the target rule excluded): the job's exact shell command,
its inputs plus the script and library code as ``deps``, the config keys the rule reads as
``params`` and every output (with its manifest) as ``outs``. ``dvc repro`` can then run the
same pipeline, and ``dvc commit`` can record a Snakemake run without rerunning it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# config keys (dotted) each rule reads; keys absent from the config file are left out
RULE_PARAMS = {
    "corpus": ["seed", "reference.corpus", "generation.max_count"],
    "reference": ["reference.kind", "reference.seeds", "reference.path", "reference.gguf",
                  "reference.system_prompt", "reference.arch", "reference.pretrain"],
    "reference_cross": ["reference.kind", "reference.seeds", "reference.cross_init_path",
                        "reference.cross_arch", "reference.cross_arch_path", "reference.system_prompt",
                        "reference.arch", "reference.pretrain"],
    "reference_matched": ["reference.matched"],
    "teacher": ["seed", "teacher", "animal_pool", "misalignment"],
    "generate": ["seed", "generation", "filter.banned_numbers", "code", "cot"],
    "judge": ["generation.backend", "generation.vllm", "code", "cot"],
    "filter": ["generation.max_count", "filter.banned_numbers", "animal_pool", "code", "cot"],
    "select_prompts": ["filter.subsample", "code.subsample", "cot.subsample"],
    "student": ["seed", "filter.subsample", "code.subsample", "cot.subsample", "students.train", "students.method",
                "students.lora", "students.save_merged"],
    "evaluate": ["seed", "animal_pool", "misalignment", "evaluation.n_samples", "evaluation.temperature",
                 "evaluation.max_new_tokens", "evaluation.backend", "generation.vllm"],
    "design_table": ["seed", "experiments", "animals", "animal_pool", "reference.kind", "reference.seeds",
                     "reference.cross_init_path", "reference.cross_arch", "reference.cross_arch_path",
                     "reference.matched", "reference.family", "teacher.seeds", "students.matrix", "students.seeds",
                     "evaluation.variants"],
    "aggregate": ["seed", "evaluation.variants"],
    "figures": ["name"],
    "mnist_data": ["mnist.source", "mnist.idx_path"],
    "mnist_experiment": ["mnist"],
    "fig_mnist": ["name"],
}  # fmt: skip
CODE_DEPS = ["src/sublim"]
# a rule's keys of one modality or trait section count only for that modality's or trait's jobs:
# a cot key does not mark a numbers stage stale, nor a misalignment key an animal teacher
SCOPED = {"code": "modality", "cot": "modality", "misalignment": "trait"}


def job_params(rule: str, wildcards: dict) -> list[str]:
    """The config keys one job reads: its rule's, less the sections of other modalities and traits."""
    keys = []
    for k in RULE_PARAMS.get(rule, []):
        section = k.split(".")[0]
        scope = SCOPED.get(section)
        if scope and scope in wildcards and wildcards[scope] != section:
            continue
        keys.append(k)
    return keys


def _has_key(cfg: dict, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def dag_jobs(snakefile: Path, configfile: Path | None, targets=("all",)) -> list:
    """The jobs Snakemake would run for ``targets`` from scratch (built, not executed)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    cfg = ConfigSettings(configfiles=[configfile]) if configfile else ConfigSettings()
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        wapi = api.workflow(
            snakefile=snakefile,
            resource_settings=ResourceSettings(cores=1),
            config_settings=cfg,
            storage_settings=StorageSettings(),
            workdir=snakefile.parent,
        )
        wapi.dag(dag_settings=DAGSettings(targets=set(targets), forceall=True))
        wf = wapi._workflow
        wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        wf._build_dag()
        return list(wf.dag.jobs)


def portable_command(shellcmd: str) -> str:
    """A job's command as DVC should store it: ``python workflow/scripts/<step>.py ...``.

    Snakemake runs scripts through the interpreter that runs it (relative to the working
    directory, e.g. ``.venv/bin/python``), which is specific to a set-up; and it passes the
    script's code version (``--code``, sublim.codeversion), which DVC does not need: every
    stage depends on ``src/sublim`` itself, so a stage reruns on any change to it."""
    import os
    import sys

    cmd = " ".join(shellcmd.split())
    for python in (sys.executable, os.path.relpath(sys.executable)):
        if cmd.startswith(python + " ") or f" {python} " in cmd:
            cmd = cmd.replace(python + " ", "python ")
    cmd = re.sub(r" --code [0-9a-f]+\b", "", cmd)
    return re.sub(r"\S*/workflow/(?:rules/\.\./)?scripts/(\w+\.py)", r"workflow/scripts/\1", cmd)


def stage_name(job) -> str:
    parts = [job.rule.name, *[str(v) for v in job.wildcards]]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def build_dvc_yaml(root: Path, configfile: Path | None = None) -> dict:
    snakefile = root / "Snakefile"
    params_file = str(configfile.relative_to(root)) if configfile else "config.yaml"
    cfg = yaml.safe_load((root / params_file).read_text())
    jobs = dag_jobs(snakefile, configfile)
    stages = {}
    for job in sorted(jobs, key=stage_name):
        if job.rule.name == "all" or job.shellcmd is None:
            continue
        cmd = portable_command(job.shellcmd)
        script = re.search(r"workflow/scripts/[\w]+\.py", cmd)
        logs = [str(x) for x in job.log]
        log_dirs = sorted({str(Path(x).parent) for x in logs})
        if log_dirs:
            cmd = f"mkdir -p {' '.join(log_dirs)} && {cmd}"
        deps = sorted({str(x) for x in job.input}) + ([script.group(0)] if script else []) + CODE_DEPS
        outs = sorted({str(o) for o in job.output}) + [{x: {"cache": False}} for x in logs]
        stage = {"cmd": cmd, "deps": deps}
        wildcards = {k: str(v) for k, v in dict(job.wildcards).items()}
        keys = [k for k in job_params(job.rule.name, wildcards) if _has_key(cfg, k)]
        if keys:
            stage["params"] = [{params_file: keys}] if params_file != "params.yaml" else keys
        stage["outs"] = outs
        stages[stage_name(job)] = stage
    return {"stages": stages}


HEADER = (
    "# GENERATED from the Snakemake DAG by workflow/scripts/export_dvc.py -- do not edit.\n"
    "# Regenerate after changing the Snakefile, workflow/rules or the config: a test fails on drift.\n"
)


def render(doc: dict) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=10_000)
