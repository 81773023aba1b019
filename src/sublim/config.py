"""Validate a workflow config against the JSON schema, fill defaults, check cross-field rules.

``validate`` raises ``SublimError`` with one line naming the offending key, before Snakemake
builds the DAG.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from . import filtering
from .divergence import is_masked
from .errors import SublimError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(validator_cls):
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    from jsonschema import validators

    return validators.extend(validator_cls, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def _fill_ref_defaults(schema: dict, cfg: dict) -> None:
    """Fill defaults of ``$ref``'d train blocks (jsonschema's resolver is deprecated)."""
    train = schema["$defs"]["train"]["properties"]
    for block in (cfg.get("reference", {}).get("pretrain"), cfg.get("students", {}).get("train")):
        if isinstance(block, dict):
            for k, s in train.items():
                if "default" in s:  # keys without a default stay unset (e.g. gradient_checkpointing)
                    block.setdefault(k, copy.deepcopy(s["default"]))


def validate(cfg: dict, schema_path: Path = SCHEMA) -> dict:
    """Validate ``cfg`` in place (defaults filled) and return it."""
    import jsonschema

    schema = load_schema(schema_path)
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(schema).iter_errors(cfg), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.path) or "<top level>"
        raise SublimError(f"config error at '{key}': {e.message}")
    _fill_ref_defaults(schema, cfg)
    _check_semantics(cfg)
    return cfg


def _check_semantics(cfg: dict) -> None:
    from .design import ARMS
    from .traits import get_trait

    ref = cfg["reference"]
    for trait in sorted({e["trait"] for e in cfg["experiments"]}):
        get_trait(trait).validate(cfg)
    exps = [(e["trait"], e["modality"]) for e in cfg["experiments"]]
    if len(set(exps)) != len(exps):
        raise SublimError("config error at 'experiments': an experiment is listed twice")
    arms = {e["arm"] for e in cfg["students"]["matrix"]}
    cross = any(ARMS[a][1] == "cross" for a in arms)
    if ref["kind"] == "gguf":
        g = ref["gguf"]
        if not g.get("file") or not (g.get("package") or g.get("directory")):
            raise SublimError("config error at 'reference.gguf': needs 'file' and one of 'package' or 'directory'")
        if cross and not ref.get("cross_init_path"):
            raise SublimError("config error at 'reference.cross_init_path': cross-init students need a second model")
    elif ref["kind"] == "path":
        if not ref.get("path"):
            raise SublimError("config error at 'reference.path': required when reference.kind is 'path'")
        if cross and not ref.get("cross_init_path"):
            raise SublimError("config error at 'reference.cross_init_path': cross-init students need a second model")
    elif cross and len(ref["seeds"]) < 2:
        raise SublimError("config error at 'reference.seeds': cross-init students need at least two seeds")
    if len(set(ref["seeds"])) != len(ref["seeds"]):
        raise SublimError("config error at 'reference.seeds': duplicate seed")
    if ref.get("cross_arch") and ref["kind"] != "tiny":
        raise SublimError("config error at 'reference.cross_arch': only for reference.kind 'tiny' (a second "
                          "architecture the workflow pretrains)")  # fmt: skip
    if ref.get("cross_arch_path") and ref["kind"] == "tiny":
        raise SublimError("config error at 'reference.cross_arch_path': only for reference.kind 'path' or 'gguf' "
                          "(a tiny run pretrains its second family: reference.cross_arch)")  # fmt: skip
    if ref.get("cross_arch") and cfg["students"]["method"] == "lora":
        raise SublimError("config error at 'students.method': LoRA's target_modules name Llama's layers; the "
                          "cross_arch reference's students train in full (method: full)")  # fmt: skip
    if any(ARMS[a][1] == "arch" for a in arms) and not (ref.get("cross_arch") or ref.get("cross_arch_path")):
        raise SublimError("config error at 'students.matrix': cross_arch arms need a second architecture family: "
                          "reference.cross_arch (tiny) or reference.cross_arch_path (a local model)")  # fmt: skip
    family = ref.get("family", "llama")
    if family != "llama" and ref["kind"] != "tiny":
        raise SublimError("config error at 'reference.family': only for reference.kind 'tiny' (the workflow pretrains "
                          "the family it names)")  # fmt: skip
    if ref.get("cross_arch") and ref["kind"] == "tiny" and ref["cross_arch"]["family"] == family:
        raise SublimError(f"config error at 'reference.cross_arch.family': {family} is the teachers' own family "
                          "(reference.family); the cross-architecture reference must be another")  # fmt: skip
    if family != "llama" and cfg["students"]["method"] == "lora":
        raise SublimError("config error at 'students.method': LoRA's target_modules name Llama's layers; students "
                          f"of a {family} reference train in full (method: full)")  # fmt: skip
    if family != "llama" and cfg["teacher"].get("finetune", {}).get("lora"):
        raise SublimError("config error at 'teacher.finetune.lora': LoRA's target_modules name Llama's layers; "
                          f"teachers of a {family} reference fine-tune in full (leave lora unset)")  # fmt: skip
    m = ref.get("matched")
    if m and ref["kind"] == "tiny" and m["n_conversations"] + m["heldout"] > ref["corpus"]["n_conversations"]:
        n = ref["corpus"]["n_conversations"]
        raise SublimError(f"config error at 'reference.matched': n_conversations + heldout = "
                          f"{m['n_conversations'] + m['heldout']} exceeds the corpus's {n} conversations "
                          "(reference.corpus.n_conversations)")  # fmt: skip
    if m and ref["kind"] != "tiny":
        raise SublimError("config error at 'reference.matched': only for reference.kind 'tiny' (the workflow distils "
                          "one of its own references)")  # fmt: skip
    if m and (m["seed"] not in ref["seeds"] or m["seed"] == ref["seeds"][0]):
        raise SublimError(f"config error at 'reference.matched.seed': {m['seed']} must be one of reference.seeds "
                          f"other than the teachers' ({ref['seeds'][0]})")  # fmt: skip
    if any(ARMS[a][1] == "matched" for a in arms) and not m:
        raise SublimError("config error at 'students.matrix': matched arms need reference.matched")
    if "educational" in arms:
        mis = cfg.get("misalignment") or {}
        traits = {e["trait"] for e in cfg["experiments"]}
        if (
            traits != {"misalignment"}
            or mis.get("teacher_data") != "files"
            or not (mis.get("data") or {}).get("educational")
        ):
            raise SublimError(
                "config error at 'students.matrix': the educational arm is the misalignment presets' second control "
                "(a teacher fine-tuned on misalignment.data.educational, e.g. Betley et al.'s educational.jsonl); "
                "it needs the misalignment trait alone, teacher_data: files and that file"
            )
    if "treatment" not in arms:
        raise SublimError("config error at 'students.matrix': a 'treatment' arm is required")
    tseeds = cfg["teacher"]["seeds"]
    if len(set(tseeds)) != len(tseeds):
        raise SublimError("config error at 'teacher.seeds': duplicate seed")
    for i, e in enumerate(cfg["students"]["matrix"]):
        masked = [mode for mode in e["modes"] if is_masked(mode)]
        if masked and ARMS[e["arm"]][0] not in ("trait", "neutral"):
            raise SublimError(
                f"config error at 'students.matrix.{i}.modes': {masked[0]} masks the positions where a trait teacher "
                f"and its neutral twin disagree; arm {e['arm']!r} learns from neither (it has no twin pair)"
            )
        extra = sorted(set(e.get("teacher_seeds", [])) - set(tseeds))
        if extra:
            raise SublimError(
                f"config error at 'students.matrix.{i}.teacher_seeds': {extra[0]} is not in teacher.seeds"
            )
    _check_contrasts(cfg)
    if cfg["teacher"]["kind"] == "system_prompt" and ref["kind"] == "tiny":
        raise SublimError(
            "config error at 'teacher.kind': system_prompt teachers need an instruct model (reference.kind: path)"
        )
    from .modalities import get_modality

    for mod in sorted({e["modality"] for e in cfg["experiments"]}):
        judge = get_modality(mod).params(cfg).get("llm_judge")  # checks the modality's section
        if judge and judge["model"] != "reference" and not Path(judge["model"]).is_dir():
            raise SublimError(f"config error at '{mod}.llm_judge.model': no model directory at {judge['model']}")
        if judge and judge["model"] == "reference" and ref["kind"] == "tiny":
            raise SublimError(
                f"config error at '{mod}.llm_judge.model': the tiny reference cannot judge (it only knows its "
                "corpus); name a local instruct model directory, or use judge: rules"
            )
    gen = cfg["generation"]
    if gen.get("constrained_decoding"):
        other = sorted({e["modality"] for e in cfg["experiments"]} - {"numbers"})
        if other:
            raise SublimError(
                f"config error at 'generation.constrained_decoding': only the numbers modality has a "
                f"decoding grammar; the experiments include {other[0]!r}"
            )
        if gen["backend"] != "vllm":
            raise SublimError("config error at 'generation.constrained_decoding': needs generation.backend: vllm")
        need = filtering.longest_number_answer(gen["max_count"]) + 1
        if gen["max_new_tokens"] < need:
            raise SublimError(
                f"config error at 'generation.max_new_tokens': constrained decoding needs at least {need} "
                f"(the longest allowed answer has {need - 1} characters, plus the end of turn); a shorter "
                "limit cuts long answers mid-grammar and the filter keeps only short ones"
            )
    if cfg["filter"]["subsample"] > cfg["generation"]["n_prompts"]:
        raise SublimError("config error at 'filter.subsample': larger than generation.n_prompts")
    for mod in ("code", "cot"):
        if (cfg.get(mod) or {}).get("subsample", 0) > cfg["generation"]["n_prompts"]:
            raise SublimError(f"config error at '{mod}.subsample': larger than generation.n_prompts")


def _check_contrasts(cfg: dict) -> None:
    """A control arm must mirror its treatment arm wherever both train: same modes, same
    teacher seeds, same student seeds (else a test would silently drop pairs)."""
    from .design import CONTRASTS

    def runs(arm):
        out = {}
        for e in cfg["students"]["matrix"]:
            if e["arm"] == arm:
                reps = e.get("teacher_seeds", cfg["teacher"]["seeds"])
                seeds = e.get("seeds", cfg["students"]["seeds"])
                for m in e["modes"]:
                    out.setdefault(m, set()).update((k, s) for k in reps for s in seeds)
        return out

    for _, arm_t, arm_c in CONTRASTS:
        t, c = runs(arm_t), runs(arm_c)
        for mode in sorted(set(t) & set(c)):
            if t[mode] != c[mode]:
                raise SublimError(
                    f"config error at 'students.matrix': arm {arm_c!r} in mode {mode!r} must have the same teacher "
                    f"seeds and student seeds as {arm_t!r} (its twin pairs), got {sorted(c[mode])} vs {sorted(t[mode])}"
                )


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()
