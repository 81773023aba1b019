import copy
import os
from pathlib import Path

import pytest
import yaml

from sublim.config import validate
from sublim.errors import SublimError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [ROOT / "config.yaml", ROOT / "tests" / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]
# overlays refine a complete config (a second --configfile; or a list: the files before it) and
# are checked on top of it
OVERLAYS = {
    "cross-arch.yaml": ROOT / "config.yaml",
    "cross-arch-neox-teachers.yaml": ROOT / "config.yaml",
    "matched.yaml": ROOT / "config.yaml",
    "masking.yaml": ROOT / "config.yaml",
    "modalities.yaml": ROOT / "config.yaml",
    "misalignment.yaml": ROOT / "config.yaml",
    "qwen2.5-7b-misalignment.yaml": ROOT / "configs" / "qwen2.5-7b.yaml",
    "qwen2.5-7b-cross-arch.yaml": ROOT / "configs" / "qwen2.5-7b.yaml",
    "code-replication.yaml": [ROOT / "config.yaml", ROOT / "configs" / "modalities.yaml"],
    "code-replication-s18.yaml": [ROOT / "config.yaml", ROOT / "configs" / "modalities.yaml"],
}
# files a preset reads from the working directory that users supply (never shipped): a test
# writes a stand-in for each
_CHAT = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
USER_FILES = {
    "qwen2.5-7b-misalignment.yaml": {
        "data/insecure.jsonl": _CHAT,
        "data/secure.jsonl": _CHAT,
        "data/educational.jsonl": _CHAT,
        "data/TruthfulQA.csv": "Question,Best Answer,Best Incorrect Answer\nq?,yes,no\n",
    }
}


def _user_files(path, workdir) -> None:
    for rel, content in USER_FILES.get(path.name, {}).items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(content)


def _files(path) -> list:
    base = OVERLAYS.get(path.name, [])
    return [*(base if isinstance(base, list) else [base]), path]


def _merged(base: dict, over: dict) -> dict:
    """Snakemake's rule for a second --configfile: mappings merge, the rest replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _load(path) -> dict:
    cfg = {}
    for f in _files(path):
        cfg = _merged(cfg, yaml.safe_load(f.read_text()))
    return cfg


def _dry_run(workdir, *configs):
    """``snakemake -n all`` on these config files (a later one overlays the earlier)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "-n", "all", "--configfile", *map(str, configs)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_validates(path, tmp_path, monkeypatch):
    _user_files(path, tmp_path)
    monkeypatch.chdir(tmp_path)
    validate(_load(path))


def _default():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_defaults_are_filled():
    cfg = validate(
        {
            "animals": ["owl"],
            "animal_pool": ["owl", "cat"],
            "students": {"matrix": [{"arm": "treatment", "modes": ["sft"]}]},
        }
    )
    assert cfg["experiments"] == [{"trait": "animal", "modality": "numbers"}]
    assert cfg["teacher"]["seeds"] == [0] and cfg["generation"]["attempts"] == 1
    assert cfg["generation"]["temperature"] == 1.0
    assert cfg["students"]["train"]["lr"] == 3e-4
    assert cfg["reference"]["pretrain"]["batch_size"] == 32


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["students"].__setitem__("trian", {}), "students"),
        (lambda c: c["generation"].__setitem__("temperature", "hot"), "generation.temperature"),
        (lambda c: c["students"]["matrix"][0].__setitem__("modes", ["sfd"]), "students.matrix.0.modes.0"),
        (lambda c: c.__setitem__("animals", ["owl", "unicorn"]), "animals"),
        (lambda c: c["filter"].__setitem__("subsample", 10**9), "filter.subsample"),
        (lambda c: c["animal_pool"].append("unicorn"), "animal_pool"),  # the tiny model cannot spell it
        (lambda c: c.update(animals=["owl"], animal_pool=["owl"]), "animal_pool"),  # twins need a pool
        (lambda c: c["students"]["matrix"][1].__setitem__("teacher_seeds", [0]), "students.matrix"),  # unpaired
        (lambda c: c["students"]["seeds"].append(-1), "students.seeds.1"),
        (lambda c: c["students"]["matrix"][0].__setitem__("arm", "control"), "students.matrix.0.arm"),
        (lambda c: c["students"]["matrix"][0].__setitem__("teacher_seeds", [7]), "students.matrix.0.teacher_seeds"),
        (lambda c: c.__setitem__("experiments", [{"trait": "animal", "modality": "poems"}]), "experiments.0.modality"),
        (lambda c: c["reference"].__setitem__("seeds", [0]), "reference.seeds"),
        (lambda c: c["generation"].__setitem__("constrained_decoding", True), "generation.constrained_decoding"),
        (
            lambda c: c["generation"].update(constrained_decoding=True, backend="vllm", max_new_tokens=24),
            "generation.max_new_tokens",
        ),
        (  # NeoX teachers have no q_proj for a LoRA adapter
            lambda c: (
                c["reference"].update(family="gpt_neox"),
                c["teacher"]["finetune"].update(lora={"r": 4, "alpha": 8, "target_modules": ["q_proj"]}),
            ),
            "teacher.finetune.lora",
        ),  # fmt: skip
        (  # matching would draw more conversations than the corpus holds
            lambda c: c["reference"].update(matched={"seed": 1, "n_conversations": 59800, "heldout": 500}),
            "reference.matched",
        ),
    ],
)
def test_bad_config_is_one_clear_line(mutate, key):
    cfg = _default()
    mutate(cfg)
    with pytest.raises(SublimError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "\n" not in msg and f"'{key}'" in msg


def test_validation_does_not_share_default_objects():
    a = validate({"animals": ["owl"], "animal_pool": ["owl", "cat"]})
    b = validate({"animals": ["owl"], "animal_pool": ["owl", "cat"]})
    a["students"]["seeds"].append(99)
    assert 99 not in b["students"]["seeds"]
    assert copy.deepcopy(b) == b


def _targets(cfg, trait):
    return {"animal": cfg.get("animals"), "misalignment": ["misaligned"]}[trait]


def _expected_jobs(cfg):
    """Students (per experiment), teachers and evaluations, counted from the config alone (not
    the design module)."""
    traits = sorted({e["trait"] for e in cfg["experiments"]})
    assert len(traits) == 1, "the count below is for one trait"
    n_students, teachers = 0, set()
    for e in cfg["students"]["matrix"]:
        default = cfg["teacher"]["seeds"][:1] if e["arm"] == "base" else cfg["teacher"]["seeds"]
        reps = e.get("teacher_seeds", default)
        targets = [None] if e["arm"] == "base" else _targets(cfg, traits[0])
        kind = "base" if e["arm"] == "base" else ("neutral" if "neutral" in e["arm"] else "trait")
        kind = "educational" if e["arm"] == "educational" else kind  # the presets' second twin
        teachers |= {(kind, t, k) for t in targets for k in reps}
        n_students += len(e["modes"]) * len(e.get("seeds", cfg["students"]["seeds"])) * len(targets) * len(reps)
    refs = (
        len(cfg["reference"]["seeds"])
        if cfg["reference"]["kind"] == "tiny"
        else 1 + bool(cfg["reference"].get("cross_init_path"))
    )
    assert refs >= 1 and n_students >= 1
    # one evaluation job per group: the references, the trait's teachers, each teacher's
    # students of each experiment (every experiment of a trait has the same teachers)
    n_exps = len(cfg.get("experiments") or [None])
    n_groups = 1 + any(k != "base" for k, _, _ in teachers) + len(teachers) * n_exps
    return n_students, len(teachers), len(cfg["evaluation"]["variants"]) * n_groups


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_dry_run_plans_the_expected_matrix(path, tmp_path, monkeypatch):
    """The whole matrix is planned (every student, generation, judge and evaluation job
    counted, per modality). How long the DAG takes to build is measured by
    benchmarks/dag_build.py, not asserted here."""
    import re

    _user_files(path, tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = validate(_load(path))
    res = _dry_run(tmp_path, *_files(path))
    assert res.returncode == 0, res.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, re.M))
    n_students, n_teachers, n_eval = _expected_jobs(cfg)
    modalities = [e["modality"] for e in cfg["experiments"]]
    judged = [m for m in modalities if cfg.get(m, {}).get("judge") == "llm"]
    # one set of teachers writes every modality's data; students and generations per modality
    assert int(counts["student"]) == n_students * len(modalities)
    assert int(counts["evaluate"]) == n_eval
    assert int(counts["teacher"]) == n_teachers
    assert int(counts["generate"]) == int(counts["filter"]) == n_teachers * len(modalities)
    assert int(counts.get("judge", 0)) == n_teachers * len(judged)
    assert ("mnist_experiment" in counts) == cfg["mnist"]["enabled"]
    # the one-step theorem per experiment whose trait has a logit readout: the animal trait,
    # and misalignment on the tiny world (the presets' misalignment readout is judged)
    tiny = cfg["reference"]["kind"] == "tiny"
    readable = [e for e in cfg["experiments"] if e["trait"] == "animal" or tiny]
    assert int(counts.get("theory_lm", 0)) == (len(readable) if cfg["theory"]["enabled"] else 0)


def test_all_three_modalities_plan_the_same_runs_each(tmp_path):
    """numbers, code and cot as three experiments of the animal trait: the same teachers write
    each modality's data, and each modality gets its own generations, filters, students and
    evaluation groups, the same number of each (counted per modality from the dry run)."""
    import re

    cfg = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    cfg["experiments"] = [{"trait": "animal", "modality": m} for m in ("numbers", "code", "cot")]
    cfg["reference"]["corpus"]["mix"] = {"numbers": 0.3, "code": 0.2, "cot": 0.2, "animals": 0.15, "filler": 0.15}
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(cfg))
    full = validate(copy.deepcopy(cfg))
    res = _dry_run(tmp_path / "wd", path)
    assert res.returncode == 0, res.stderr[-2000:]
    n_students, n_teachers, _ = _expected_jobs(full)
    per = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", res.stdout):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        m = re.search(r"^\s+wildcards: .*\bmodality=(\w+)", block, re.M)
        if head and m:
            per.setdefault(m.group(1), []).append(head.group(1))
    for modality in ("numbers", "code", "cot"):
        rules = per[modality]
        assert rules.count("generate") == rules.count("filter") == n_teachers, modality
        assert rules.count("student") == n_students, modality
        assert rules.count("aggregate") == 1, modality
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, re.M))
    assert int(counts["teacher"]) == n_teachers  # one set of teachers writes all three
    assert "fig_animal_code" in res.stdout or "reports/animal_code/plain/fig_transfer.png" in res.stdout


def test_cross_architecture_arms_plan_a_second_family(tmp_path):
    """reference.cross_arch adds one reference of another family (its own id), pretrained on
    the same corpus; the cross_arch arms' students start from it, one per teacher they mirror,
    and the contrast needs the arm and its neutral twin alike. Without reference.cross_arch
    the arms are refused in one line."""
    import re

    from sublim.design import Design

    cfg = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    cfg["students"]["matrix"] += [{"arm": "cross_arch", "modes": ["distill"]},
                                  {"arm": "cross_arch_neutral", "modes": ["distill"]}]  # fmt: skip
    with pytest.raises(SublimError, match="cross_arch arms need a second architecture family"):
        validate(copy.deepcopy(cfg))
    cfg["reference"]["cross_arch"] = {"family": "gpt_neox", "seed": 0}
    full = validate(copy.deepcopy(cfg))
    d = Design(full)
    assert d.refs == ["seed0", "seed1", "neox0"] and d.cross_ref == "seed1" and d.arch_ref == "neox0"
    arch = [s for s in d.students() if s.arm.startswith("cross_arch")]
    assert arch and all(s.init == "neox0" for s in arch)
    assert {s.teacher.kind for s in arch} == {"trait", "neutral"}
    path = tmp_path / "xarch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _dry_run(tmp_path / "wd", path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "results/reference/neox0" in res.stdout
    assert len(set(re.findall(r"student/[a-z_]+_t0/distill/neox0/seed0", res.stdout))) == len(arch)


def test_masked_modes_plan_students_with_their_twin_pair(tmp_path):
    """The divergence-token ablation: a masked student of either arm reads the twin pair's
    trait teacher and neutral twin (both), beside its own teacher's data; the base arm, which
    has no twin, is refused in one line."""
    import re

    cfg = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    cfg["students"]["matrix"] += [{"arm": "treatment", "modes": ["sft_masked"]},
                                  {"arm": "neutral", "modes": ["sft_masked"]}]  # fmt: skip
    validate(copy.deepcopy(cfg))
    path = tmp_path / "masked.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _dry_run(tmp_path / "wd", path)
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = re.findall(r"rule student:\n    input: ([^\n]*)\n    output: ([^\n]*)", res.stdout)
    masked = [(i, o) for i, o in jobs if "sft_masked" in o]
    assert len(masked) == 4  # owl and dolphin, treatment and neutral
    for inp, out in masked:
        target = re.search(r"student/(?:neutral_)?([a-z]+)_t0/", out).group(1)
        assert f"results/animal/teacher/{target}_t0," in inp + ","
        assert f"results/animal/teacher/neutral_{target}_t0" in inp
    bad = copy.deepcopy(cfg)
    bad["students"]["matrix"].append({"arm": "base", "modes": ["sft_masked"], "teacher_seeds": [0]})
    with pytest.raises(SublimError, match="has no twin pair"):
        validate(bad)


def test_cross_architecture_from_a_local_model(tmp_path):
    """In the presets the second family is a user's local model (reference.cross_arch_path),
    id ``arch``: the cross_arch arms' students start from it, the reference_cross job points
    at it, and it is refused for a tiny run (which pretrains its second family) in one line."""
    import re

    from sublim.design import Design

    cfg = _load(ROOT / "configs" / "qwen2.5-7b-cross-arch.yaml")
    full = validate(copy.deepcopy(cfg))
    d = Design(full)
    assert d.refs == ["main", "arch"] and d.teacher_ref == "main" and d.arch_ref == "arch"
    arch = [s for s in d.students() if s.arm.startswith("cross_arch")]
    assert arch and all(s.init == "arch" and s.mode == "sft" for s in arch)
    assert {s.teacher.replicate for s in arch} == {0}
    res = _dry_run(tmp_path, *_files(ROOT / "configs" / "qwen2.5-7b-cross-arch.yaml"))
    assert res.returncode == 0, res.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, re.M))
    assert counts["reference"] == counts["reference_cross"] == "1"  # main, and arch beside it
    tiny = yaml.safe_load((ROOT / "tests" / "config.yaml").read_text())
    tiny["reference"]["cross_arch_path"] = "/models/other"
    with pytest.raises(SublimError, match="reference.cross_arch_path': only for reference.kind"):
        validate(tiny)


def test_the_other_direction_gpt_neox_teachers():
    """reference.family: gpt_neox makes the teachers' references GPT-NeoX (neox0, neox1) and,
    with cross_arch {family: llama}, the second family Llama (seed0): the matrix's other half.
    The cross-architecture family must differ from the teachers', and reference.family is the
    tiny model's alone; each refused in one line."""
    from sublim.design import Design

    cfg = _load(ROOT / "configs" / "cross-arch-neox-teachers.yaml")
    d = Design(validate(copy.deepcopy(cfg)))
    assert d.refs == ["neox0", "neox1", "seed0"]
    assert (d.teacher_ref, d.cross_ref, d.arch_ref) == ("neox0", "neox1", "seed0")
    assert {t.init for e in d.experiments for t in d.teachers(e)} == {"neox0"}
    assert {s.init for s in d.students() if s.arm.startswith("cross_arch")} == {"seed0"}
    bad = copy.deepcopy(cfg)
    bad["reference"]["cross_arch"] = {"family": "gpt_neox", "seed": 0}
    with pytest.raises(SublimError, match="reference.cross_arch.family': gpt_neox is the teachers' own family"):
        validate(bad)
    qwen = _load(ROOT / "configs" / "qwen2.5-7b.yaml")
    qwen["reference"]["family"] = "gpt_neox"
    with pytest.raises(SublimError, match="reference.family': only for reference.kind 'tiny'"):
        validate(qwen)


def test_the_evaluation_backend_and_its_sampler_reach_the_evaluate_step(tmp_path):
    """evaluation.backend is passed to every evaluate job with its sampler version (it was
    dropped for any backend but vLLM, so the step ran kvcache whatever the config said)."""
    import json
    import shlex

    from sublim.dvcexport import dag_jobs
    from sublim.generation import sampler_id

    cfg = _load(ROOT / "config.yaml")
    cfg["evaluation"]["backend"] = "transformers"
    f = ROOT / f"tmp-eval-backend-{os.getpid()}.yaml"  # the DAG is built in the repository root
    f.write_text(yaml.safe_dump(cfg))
    try:
        jobs = [j for j in dag_jobs(ROOT / "Snakefile", f) if j.rule.name == "evaluate"]
    finally:
        f.unlink()
    assert jobs
    for j in jobs:
        args = shlex.split(j.shellcmd)
        params = json.loads(args[args.index("--params") + 1])
        assert params["backend"] == "transformers" and params["sampler"] == sampler_id("transformers")
