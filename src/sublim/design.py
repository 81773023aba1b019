"""The experiment design as one typed table, built from the config in one place.

The paper is a grid: traits x modalities x arms x modes x seeds. This module writes that
grid once. The Snakefile's targets, the rules' parameters, the aggregation, the statistics,
the figures and the ``dvc.yaml`` export all read it; nothing re-derives an arm from a path.

* A **teacher** belongs to a trait. Trait teachers carry one target (an animal) each and come
  in replicates (``teacher.seeds``). Every trait teacher has a **neutral twin**: made by the
  same recipe with the same seed (same questions, same order, same steps), whose answers are
  spread uniformly over the pool instead of naming the target. The **base** teacher is the
  untouched reference (the paper's control).
* A **student** is one trained model: (trait, modality, arm, teacher, init, mode, seed).
  Arms name which teacher's data it learns from and which initialisation it starts from.
* A **contrast** pairs two arms whose teachers are twins: they differ in the trait alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from .errors import SublimError

# arm -> (teacher kind, initialisation: "teacher" = the teachers' own reference, "cross" =
# the second reference of the same family, "arch" = the reference of another architecture
# family, reference.cross_arch; "matched" = a second reference distilled to behave like the
# teachers' reference, reference.matched)
ARMS: dict[str, tuple[str, str]] = {
    "treatment": ("trait", "teacher"),
    "neutral": ("neutral", "teacher"),
    "base": ("base", "teacher"),
    "cross_init": ("trait", "cross"),
    "cross_init_neutral": ("neutral", "cross"),
    "cross_arch": ("trait", "arch"),
    "cross_arch_neutral": ("neutral", "arch"),
    "matched": ("trait", "matched"),
    "matched_neutral": ("neutral", "matched"),
    # the misalignment presets' second control (Betley et al.'s educational.jsonl): a teacher
    # fine-tuned on the same insecure code, asked for with an educational reason
    "educational": ("educational", "teacher"),
}
# paired contrasts: (name, arm with the trait, its twin arm without it)
CONTRASTS: tuple[tuple[str, str, str], ...] = (
    ("neutral", "treatment", "neutral"),
    ("cross_init_neutral", "cross_init", "cross_init_neutral"),
    ("cross_arch_neutral", "cross_arch", "cross_arch_neutral"),
    ("matched_neutral", "matched", "matched_neutral"),
    ("educational", "treatment", "educational"),
)
# a tiny reference's id: its family's short name and its seed (seed0: Llama, neox0: GPT-NeoX)
FAMILY_PREFIX = {"llama": "seed", "gpt_neox": "neox"}
ARCH_PREFIX = {k: v for k, v in FAMILY_PREFIX.items() if k != "llama"}  # the second families


def tiny_ref_id(family: str, seed: int) -> str:
    return f"{FAMILY_PREFIX[family]}{seed}"


def arch_ref_id(ref_cfg: dict) -> str | None:
    """The cross-architecture reference's id (``neox0``; ``arch`` for a local model,
    ``reference.cross_arch_path``), or None without one."""
    if ref_cfg.get("kind") != "tiny" and ref_cfg.get("cross_arch_path"):
        return "arch"
    ca = ref_cfg.get("cross_arch")
    if ref_cfg.get("kind") != "tiny" or not ca:
        return None
    return tiny_ref_id(ca["family"], ca["seed"])


def matched_ref_id(ref_cfg: dict) -> str | None:
    """The behaviourally matched reference's id (``match1``: seed 1 distilled to behave like
    the teachers' reference), or None without one."""
    m = ref_cfg.get("matched")
    if ref_cfg.get("kind") != "tiny" or not m:
        return None
    return f"match{m['seed']}"


def matched_start_id(ref_cfg: dict) -> str | None:
    """The reference the matched one starts from: reference.matched.seed of the teachers' family."""
    m = ref_cfg.get("matched")
    return tiny_ref_id(ref_cfg.get("family") or "llama", m["seed"]) if m and ref_cfg.get("kind") == "tiny" else None


def arch_family(ref_id: str) -> tuple[str, int]:
    """``(family, seed)`` of a tiny reference id: ``seed1`` is Llama, ``neox0`` GPT-NeoX."""
    for family, prefix in FAMILY_PREFIX.items():
        if ref_id.startswith(prefix) and ref_id[len(prefix) :].isdigit():
            return family, int(ref_id[len(prefix) :])
    raise ValueError(f"not a tiny reference id: {ref_id}")


def step_seed(base: int, *parts) -> int:
    """A seed derived deterministically from the base seed and a step's identity."""
    h = hashlib.sha256(json.dumps([base, *map(str, parts)]).encode()).hexdigest()
    return int(h[:8], 16)


@dataclasses.dataclass(frozen=True)
class Experiment:
    trait: str
    modality: str

    @property
    def name(self) -> str:
        return f"{self.trait}_{self.modality}"


@dataclasses.dataclass(frozen=True)
class Teacher:
    trait: str
    kind: str  # trait | neutral | base | educational (a second twin: the misalignment presets' control)
    target: str | None  # the trait teacher's target; a neutral twin's twin target; None for base
    replicate: int  # the teacher seed index (teacher.seeds)
    init: str  # the reference it is made from

    @property
    def id(self) -> str:
        if self.kind == "base":
            return f"base_t{self.replicate}"
        prefix = {"neutral": "neutral_", "educational": "educational_"}.get(self.kind, "")
        return f"{prefix}{self.target}_t{self.replicate}"

    @property
    def path(self) -> str:
        return f"results/{self.trait}/teacher/{self.id}"


@dataclasses.dataclass(frozen=True)
class Student:
    experiment: Experiment
    arm: str
    teacher: Teacher
    init: str
    mode: str
    seed: int

    @property
    def id(self) -> str:
        e = self.experiment
        return f"{e.trait}/{e.modality}/student/{self.teacher.id}/{self.mode}/{self.init}/seed{self.seed}"

    @property
    def path(self) -> str:
        return f"results/{self.id}"


def design_config(cfg: dict) -> dict:
    """The part of a config the design table is built from (small enough to pass to a step,
    which rebuilds the same table with ``Design``)."""
    from .traits import get_trait

    ref = cfg["reference"]
    out = {
        "seed": cfg["seed"],
        "experiments": cfg["experiments"],
        # cross_arch only when set: the design table of a run without it stays as it was
        "reference": {k: ref.get(k) for k in ("kind", "seeds", "cross_init_path")}
        | ({"cross_arch": ref["cross_arch"]} if ref.get("cross_arch") else {})
        | ({"cross_arch_path": ref["cross_arch_path"]} if ref.get("cross_arch_path") else {})
        | ({"matched": ref["matched"]} if ref.get("matched") else {})
        # the teachers' family only when it is not Llama: the design of a Llama run stays as it was
        | ({"family": ref["family"]} if ref.get("family", "llama") != "llama" else {}),
        "teacher": {"seeds": cfg["teacher"]["seeds"]},
        "students": {k: cfg["students"][k] for k in ("matrix", "seeds")},
        "evaluation": {"variants": cfg["evaluation"]["variants"]},
    }
    for trait in sorted({e["trait"] for e in cfg["experiments"]}):
        out.update({k: cfg[k] for k in get_trait(trait).CONFIG_KEYS if k in cfg})
    return out


def reference_ids(cfg: dict) -> list[str]:
    ref = cfg["reference"]
    if ref["kind"] == "tiny":
        extra = [r for r in (arch_ref_id(ref), matched_ref_id(ref)) if r]
        return [tiny_ref_id(ref.get("family") or "llama", s) for s in ref["seeds"]] + extra
    arch = arch_ref_id(ref)
    return ["main"] + (["cross"] if ref.get("cross_init_path") else []) + ([arch] if arch else [])


def eval_group(trait: str, model_id: str) -> str:
    """The evaluation job that scores a model: one process per group pays the imports and
    the job start-up once. The references go together, a trait's teachers together, and each
    teacher's students of one modality together."""
    if model_id.startswith("reference/"):
        return "reference"
    rest = model_id.removeprefix(trait + "/")
    if rest.startswith("teacher/"):
        return "teacher"
    modality, role, teacher = rest.split("/")[:3]
    if role != "student":
        raise ValueError(f"not a model id of trait {trait}: {model_id}")
    return f"{modality}/student/{teacher}"


def eval_path(trait: str, model_id: str, variant: str) -> str:
    """The CSV holding a model's trait evaluation (rows carry ``model_id``):
    ``results/{trait}/eval/{variant}/{group}.csv``."""
    return f"results/{trait}/eval/{variant}/{eval_group(trait, model_id)}.csv"


def model_path(model_id: str) -> str:
    """A model's directory: ``results/{model_id}``."""
    return f"results/{model_id}"


class Design:
    """The design of one config: experiments, teachers and students, and the table of runs."""

    def __init__(self, cfg: dict):
        from .traits import get_trait

        self.cfg = cfg
        self.refs = reference_ids(cfg)
        self.arch_ref = arch_ref_id(cfg["reference"])
        self.matched_ref = matched_ref_id(cfg["reference"])
        same_family = [r for r in self.refs if r not in (self.arch_ref, self.matched_ref)]
        self.teacher_ref = same_family[0]
        self.cross_ref = same_family[1] if len(same_family) > 1 else None
        self.experiments = [Experiment(e["trait"], e["modality"]) for e in cfg["experiments"]]
        self.teacher_seeds = list(cfg["teacher"]["seeds"])
        self._students: dict[Experiment, list[Student]] = {}
        for exp in self.experiments:
            targets = get_trait(exp.trait).targets(cfg)
            out = []
            for spec in cfg["students"]["matrix"]:
                arm = spec["arm"]
                kind, init_kind = ARMS[arm]
                init = {"teacher": self.teacher_ref, "cross": self.cross_ref, "arch": self.arch_ref,
                        "matched": self.matched_ref}[init_kind]  # fmt: skip
                if init is None:
                    need = {"arch": "reference.cross_arch or reference.cross_arch_path",
                            "matched": "reference.matched"}.get(init_kind, "a second reference")  # fmt: skip
                    raise SublimError(f"config error at 'students.matrix': arm {arm!r} needs {need}")
                # the base teacher is one model (the reference): one replicate unless asked
                reps = spec.get("teacher_seeds", self.teacher_seeds[:1] if kind == "base" else self.teacher_seeds)
                seeds = spec.get("seeds", cfg["students"]["seeds"])
                teachers = (
                    [Teacher(exp.trait, "base", None, k, self.teacher_ref) for k in reps]
                    if kind == "base"
                    else [Teacher(exp.trait, kind, t, k, self.teacher_ref) for t in targets for k in reps]
                )
                for mode in spec["modes"]:
                    for t in teachers:
                        for s in seeds:
                            out.append(Student(exp, arm, t, init, mode, s))
            ids = [s.id for s in out]
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise SublimError(f"config error at 'students.matrix': student {dup} listed twice")
            self._students[exp] = out

    # ------------------------------------------------------------------ lookups
    def students(self, exp: Experiment | None = None) -> list[Student]:
        if exp is None:
            return [s for e in self.experiments for s in self._students[e]]
        return self._students[exp]

    def experiment(self, trait: str, modality: str) -> Experiment:
        for e in self.experiments:
            if (e.trait, e.modality) == (trait, modality):
                return e
        raise KeyError(f"no experiment {trait}/{modality}")

    def teachers(self, exp: Experiment) -> list[Teacher]:
        """Every teacher whose data some student of ``exp`` learns from (sorted by id)."""
        return sorted({s.teacher for s in self._students[exp]}, key=lambda t: t.id)

    def audit_pairs(self, exp: Experiment) -> list[tuple[Teacher, Teacher]]:
        """``(trait teacher, its neutral twin)`` for every twin pair of ``exp``: the audit's
        data set and its control (same recipe, prompts and filter)."""
        ts = self.teachers(exp)
        twins = {(t.target, t.replicate): t for t in ts if t.kind == "neutral"}
        pairs = [(t, twins.get((t.target, t.replicate))) for t in ts if t.kind == "trait"]
        return [(t, n) for t, n in pairs if n is not None]

    def all_teachers(self) -> list[Teacher]:
        return sorted({t for e in self.experiments for t in self.teachers(e)}, key=lambda t: (t.trait, t.id))

    def teacher(self, trait: str, teacher_id: str) -> Teacher:
        for t in self.all_teachers():
            if t.trait == trait and t.id == teacher_id:
                return t
        raise KeyError(f"no teacher {trait}/{teacher_id} in the design")

    def student(self, student_id: str) -> Student:
        for s in self.students():
            if s.id == student_id:
                return s
        raise KeyError(f"no student {student_id} in the design")

    # ------------------------------------------------------------------ seeds
    def teacher_seed(self, t: Teacher) -> int:
        """Twins share it: a neutral teacher sees the same questions in the same order."""
        return step_seed(self.cfg["seed"], "teacher", t.trait, t.target, t.replicate)

    def prompt_seed(self, exp: Experiment) -> int:
        """Every teacher of an experiment answers the same prompts."""
        return step_seed(self.cfg["seed"], "prompts", exp.modality)

    def generation_seed(self, exp: Experiment, t: Teacher) -> int:
        """Shared by twins (common random numbers within a pair); every pair has its own, so
        system-prompt neutral twins (one model) still write independent data per pair."""
        return step_seed(self.cfg["seed"], "generate", exp.trait, exp.modality, t.target, t.replicate)

    def subsample_seed(self, exp: Experiment, seed: int) -> int:
        """A student seed draws the same prompt ids whichever arm it belongs to."""
        return step_seed(self.cfg["seed"], "subsample", exp.trait, exp.modality, seed)

    # ------------------------------------------------------------------ table
    def table(self, exp: Experiment) -> list[dict]:
        """The experiment's runs, one row per model: references, teachers, students."""
        rows = []
        for r in self.refs:
            rows.append(dict(model_id=f"reference/{r}", role="reference", arm="reference", init=r))
        for t in self.teachers(exp):
            if t.kind == "base":
                continue  # the base teacher is the reference itself
            rows.append(
                dict(
                    model_id=f"{t.trait}/teacher/{t.id}",
                    role="teacher",
                    arm=t.kind,
                    teacher=t.id,
                    teacher_kind=t.kind,
                    target=t.target,
                    replicate=t.replicate,
                    init=t.init,
                )
            )
        for s in self._students[exp]:
            rows.append(
                dict(
                    model_id=s.id,
                    role="student",
                    arm=s.arm,
                    teacher=s.teacher.id,
                    teacher_kind=s.teacher.kind,
                    target=s.teacher.target,
                    replicate=s.teacher.replicate,
                    init=s.init,
                    mode=s.mode,
                    seed=s.seed,
                )
            )
        cols = ["model_id", "role", "arm", "teacher", "teacher_kind", "target", "replicate", "init", "mode", "seed"]
        return [{"trait": exp.trait, "modality": exp.modality, **{c: r.get(c) for c in cols}} for r in rows]

    def eval_paths(self, exp: Experiment) -> list[str]:
        """The evaluation CSVs an experiment's tables read (each one group's)."""
        variants = self.cfg["evaluation"]["variants"]
        paths = [eval_path(exp.trait, r["model_id"], v) for v in variants for r in self.table(exp)]
        return list(dict.fromkeys(paths))

    def eval_group_models(self, trait: str, group: str) -> dict[str, str]:
        """``{model id: model directory}`` of the models scored in one evaluation group, over
        every experiment of the trait (a teacher is evaluated once, whatever its modalities)."""
        out = {}
        for exp in self.experiments:
            if exp.trait != trait:
                continue
            for r in self.table(exp):
                if eval_group(trait, r["model_id"]) == group:
                    out[r["model_id"]] = model_path(r["model_id"])
        if not out:
            raise KeyError(f"no models in evaluation group {trait}/{group}")
        return out
