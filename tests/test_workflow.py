"""End to end: the whole DAG on tests/config.yaml, run by Snakemake in a snapshot of the
repository (conftest.tests_run).

The run is first killed mid-way through reference pretraining, then rerun: it must resume
from the checkpoint and finish. Then the outputs, manifests and reproducibility are checked,
and last the run is recorded with DVC, pushed, cloned and pulled.
"""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from dvcutil import ENV, TESTCFG, sh, tree_hashes
from test_codeversion import insert_in_body

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
WARM = [sys.executable, "-m", "sublim.cli", "warm", "--"]  # for commands that run jobs, as run.sh does
TEST_CONFIG = ROOT / "tests" / "config.yaml"


def smk(workdir, *args, check=True, warm=False, **kw):
    """Snakemake in ``workdir``: with its own Snakefile and config when it is a snapshot of
    the repository (the shared run), else with this checkout's; under ``sublim warm`` when
    ``warm`` (commands that run jobs)."""
    own = (Path(workdir) / "Snakefile").exists()
    snakefile = Path(workdir) / "Snakefile" if own else ROOT / "Snakefile"
    config = Path(workdir) / "tests" / "config.yaml" if own else TEST_CONFIG
    cmd = [*SNAKEMAKE[:-1], str(snakefile), "--directory", str(workdir), *args, "--configfile", str(config)]
    if warm:
        cmd = WARM + cmd
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tests_run):
    """The shared run of tests/config.yaml (conftest.tests_run: killed once, then resumed)."""
    return tests_run


def test_killed_training_resumed_not_restarted(run):
    log = (run / "logs" / "reference" / "seed0.log").read_text()
    assert "resumed from step" in log
    m = json.loads((run / "results" / "reference" / "seed0" / "manifest.json").read_text())
    assert m["training"]["resumed_from_step"] > 0
    assert not (run / "checkpoints" / "reference" / "seed0").exists()  # cleared after success


EXP = "results/animal/numbers"


def test_figures_tables_and_caption(run):
    rep = run / "reports" / "animal_numbers"
    for v in ("plain", "number_prefix"):  # the number-prefix readout is plotted and captioned too
        for f in ["fig_transfer.png", "fig_specificity.png", "caption.md"]:
            assert (rep / v / f).stat().st_size > 0, (v, f)
    for f in ["stats.csv", "arms.csv", "specificity.csv", "design.csv", "results.csv"]:
        assert (rep / f).stat().st_size > 0, f
    res = pd.read_csv(rep / "results.csv")
    studs = res[res.role == "student"]
    assert set(studs.arm) == {"treatment", "neutral", "base", "cross_init", "cross_init_neutral"}
    assert set(studs["mode"]) == {"sft", "distill", "distill_full"}
    assert set(res.variant) == {"plain", "number_prefix"}
    design = pd.read_csv(rep / "design.csv")
    assert set(res.model_id) == set(design.model_id)  # every model of the design, none else
    stats = pd.read_csv(rep / "stats.csv")
    assert {"p_one_sided", "p_two_sided", "p_holm_one_sided", "p_holm_two_sided", "headline", "verdict"} <= set(
        stats.columns
    )
    assert set(stats.contrast) == {"neutral", "cross_init_neutral", "specificity"}
    for _, t in stats.iterrows():  # no model counted twice in any test
        models = t["models"].split(";")
        assert len(models) == len(set(models)) == t["n_models"]
    caption = (rep / "plain" / "caption.md").read_text()
    assert "Pre-declared headline" in caption and "Holm" in caption and "Keep rates" in caption


def test_every_artifact_has_a_manifest(run):
    arts = [*run.glob("results/reference/*"), *run.glob("results/animal/teacher/*")]
    arts += [*run.glob(f"{EXP}/student/*/*/*/*")]
    arts += [p for p in run.glob("results/**/*.jsonl")] + list(run.glob("results/animal/eval/**/*.csv"))
    assert len(arts) > 30
    for a in arts:
        mp = a / "manifest.json" if a.is_dir() else a.with_name(a.name + ".manifest.json")
        m = json.loads(mp.read_text())
        for key in ("step", "params", "seed", "inputs", "versions", "git_commit", "wall_seconds"):
            assert key in m, (a, key)
        for inp in m["inputs"].values():
            assert len(inp["sha256"]) == 64
    for d in run.glob(f"{EXP}/student/*/*/*/*"):
        assert (d / "model.safetensors").exists()


def test_filtered_data_is_byte_identical_on_rerun(run):
    before = {p: sha(p) for p in run.glob(f"{EXP}/generate/*.jsonl")}
    before |= {p: sha(p) for p in run.glob(f"{EXP}/filter/*.jsonl")}
    smk(run, "-c2", "--forcerun", "generate", "--until", "filter", timeout=600, warm=True)
    after = {p: sha(p) for p in before}
    assert before == after


def test_filtered_data_has_no_letters_and_counts(run):
    for f in run.glob(f"{EXP}/filter/*.jsonl"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        assert rows and not any(c.isalpha() for r in rows for c in r["response"])
        assert len({r["id"] for r in rows}) == len(rows)
    counts = json.loads((run / EXP / "filter" / "owl_t0.counts.json").read_text())
    assert counts["n_kept_prompts"] == counts["reasons"]["ok"] and counts["n_prompts"] == 300


def test_every_arm_trains_on_the_same_prompts(run):
    """Students of one seed see the same prompt ids whichever teacher answered them."""
    common = set(json.loads((run / EXP / "select" / "prompt_ids.json").read_text())["ids"])
    by_seed = {}
    for d in run.glob(f"{EXP}/student/*/*/*/*"):
        m = json.loads((d / "manifest.json").read_text())
        assert set(m["prompt_ids"]) <= common and len(m["prompt_ids"]) == m["params"]["subsample"]
        by_seed.setdefault(m["seed"], set()).add(tuple(m["prompt_ids"]))
    assert by_seed and all(len(v) == 1 for v in by_seed.values())


def test_audit_of_every_twin_pair(run):
    """`sublim audit` ran on each trait teacher's data against its own neutral twin's, with
    the reference and the teacher, and the experiment's table holds every pair once."""
    pairs = sorted(p.name for p in (run / EXP / "audit").iterdir())
    teachers = sorted(p.name for p in (run / "results/animal/teacher").iterdir())
    assert pairs and pairs == [t for t in teachers if not t.startswith(("neutral_", "base_"))]
    for t in pairs:
        m = json.loads((run / EXP / "audit" / t / "manifest.json").read_text())
        assert m["inputs"]["data"]["path"] == f"{EXP}/filter/{t}.jsonl"
        assert m["inputs"]["control"]["path"] == f"{EXP}/filter/neutral_{t}.jsonl"
        assert m["inputs"]["teacher"]["path"] == f"results/animal/teacher/{t}"
        s = json.loads((run / EXP / "audit" / t / "summary.json").read_text())
        assert s["verdict"] and s["n_held_out"]["data"] > 0
    table = pd.read_csv(run / "reports/animal_numbers/audit.csv")
    assert sorted(set(table.teacher)) == pairs and len(table) == len(pairs) * 4 * 3
    summary = pd.read_csv(run / "reports/animal_numbers/audit_summary.csv")
    assert {"data", "reference", "teacher", "twin"} <= set(summary.detector) and set(summary.k.dropna()) == {1, 4, 16}
    assert (summary.n_pairs <= len(pairs)).all()


def test_theory_figure_and_tests(run):
    """fig_theory from the twin pairs (same- and cross-init) and the MNIST branch, with every
    test's unit count: twin pairs for the LM, models for MNIST."""
    rep = run / "reports" / "theory"
    assert (rep / "fig_theory.png").stat().st_size > 0
    stats = pd.read_csv(rep / "stats.csv")
    lm = stats[stats.part == "lm"]
    n_pairs = len(list((run / EXP / "audit").iterdir()))
    assert set(lm.init) == {"same_init", "cross_init", "same - cross"} and (lm.n_units == n_pairs).all()
    assert set(stats[stats.part == "mnist"].init) >= {"same_init", "cross_init"}
    assert "Holm" in (rep / "caption.md").read_text()


def test_nothing_to_do_after_success(run):
    res = smk(run, "-n", "all")
    assert "Nothing to be done" in res.stdout + res.stderr


def planned_rules(res) -> set[str]:
    """The rules a dry run's job table lists (empty when there is nothing to do)."""
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return set()
    rules = set()
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:  # the table after its header
        if not line.strip() or line.split()[0] == "total":
            break
        rules.add(line.split()[0])
    return rules


def test_a_library_change_reruns_only_the_steps_that_run_it(run, tmp_path):
    """Snakemake's own params check sees each step's code version (sublim.codeversion): a copy
    of the package changes nothing, nor does a comment, nor a function nothing calls; code in
    the MNIST experiment reruns that step and what reads its output; code in the training loop
    reruns every language model's training and what follows from it, not the MNIST branch."""
    import os

    import sublim

    pkg = tmp_path / "src" / "sublim"
    shutil.copytree(Path(sublim.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "workflow").symlink_to(ROOT / "workflow")  # the config schema, beside src/ as in a checkout
    env = {**os.environ, "PYTHONPATH": str(pkg.parent), "SUBLIM_HASH_CACHE": str(tmp_path / "cache")}
    assert planned_rules(smk(run, "-n", "all", env=env)) == set()
    insert_in_body(pkg / "training.py", "train", "# a comment")
    assert planned_rules(smk(run, "-n", "all", env=env)) == set()
    f = pkg / "mnist.py"
    text = f.read_text()
    assert "def run_experiment(" in text
    f.write_text(text.replace("\ndef run_experiment(", "\ndef _new():\n    return 1\n\n\ndef run_experiment(", 1))
    assert planned_rules(smk(run, "-n", "all", env=env)) == set(), "a function nothing calls"
    insert_in_body(f, "run_experiment", "_new()")
    assert planned_rules(smk(run, "-n", "all", env=env)) == {"mnist_experiment", "fig_mnist", "all"}
    f.write_text(text)
    insert_in_body(pkg / "training.py", "train", "_ = 0")
    planned = planned_rules(smk(run, "-n", "all", env=env))
    assert {"reference", "reference_cross", "teacher", "student", "evaluate", "aggregate"} <= planned
    assert not planned & {"mnist_data", "mnist_experiment", "fig_mnist", "theory_mnist"}, planned


def test_bad_config_fails_before_dag_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEST_CONFIG.read_text().replace("subsample: 20", "subsampel: 20"))
    res = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "all", "--configfile", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("error:")]
    assert lines == [
        "error: config error at 'filter': Additional properties are not allowed ('subsampel' was unexpected)"
    ]


def test_manifests_match_their_wildcards(run):
    """Guards the paper code's copy-paste bug: each job gets its own parameters."""
    for d in run.glob("results/animal/teacher/*"):
        m = json.loads((d / "manifest.json").read_text())
        name = d.name.rsplit("_t", 1)[0]
        if name == "base":
            assert m["params"]["kind"] == "base"
        elif name.startswith("neutral_"):
            assert m["params"]["target"] is None and m["params"]["twin"] == name.removeprefix("neutral_")
        else:
            assert m["params"]["target"] == m["params"]["twin"] == name
    seeds = set()
    for d in run.glob(f"{EXP}/student/*/*/*/*"):
        teacher, mode, init, seed = d.parts[-4:]
        m = json.loads((d / "manifest.json").read_text())
        assert m["params"]["mode"] == mode and f"seed{m['seed']}" == seed
        assert m["inputs"]["data"]["path"] == f"{EXP}/filter/{teacher}.jsonl"
        assert m["inputs"]["reference"]["path"] == f"results/reference/{init}"
        seeds.add((teacher, mode, init, m["seed"]))
    assert len(seeds) == len(list(run.glob(f"{EXP}/student/*/*/*/*")))
    # the sampler that wrote the data and the readouts, versioned (an older one samples again)
    from sublim.generation import sampler_id

    gen = [json.loads(f.read_text()) for f in run.glob(f"{EXP}/generate/*.jsonl.manifest.json")]
    ev = [json.loads(f.read_text()) for f in run.glob("results/animal/eval/*/*.csv.manifest.json")]
    assert gen and ev
    assert {m["params"]["sampler"] for m in gen + ev} == {sampler_id("kvcache")}


def test_snakemake_html_report_has_figures_tables_and_config(run, tmp_path):
    # written outside the run: test_dvc then records the run's every file
    smk(run, "--report", str(tmp_path / "report.html"), timeout=300)
    html = (tmp_path / "report.html").read_text()
    for name in (
        "fig_transfer.png",
        "fig_specificity.png",
        "fig_mnist.png",
        "stats.csv",
        "caption.md",
        "arms.csv",
        "specificity.csv",
        "design.csv",
    ):
        assert name in html, name
    assert "Produced by config" in html and "tests" in html


def test_gpu_check_dry_run_runs_every_step(run, tmp_path):
    """benchmarks/gpu_check.py --dry-run: the GPU check's every step at tiny shapes on this
    CPU, the workflow step on this module's finished run (Snakemake finds nothing to do, the
    profile reads it), so a GPU's minutes are never spent on a typo."""
    out = tmp_path / "gpu-check"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(out), "--dry-run", "--workdir", str(run),
           "--cores", "2"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    gen = json.loads((out / "generation.json").read_text())
    assert [r["sampler"] for r in gen["rows"]] == ["hf-batch", "kvcache", "hf-loop"]
    assert all(r["generated_tokens"] > 0 and r["compute_fraction"] > 0 for r in gen["rows"])
    lora = json.loads((out / "lora.json").read_text())
    assert lora["steps"] == 2 and lora["throughput"]["tokens_per_s"] > 0
    prof = json.loads((out / "workflow_profile.json").read_text())
    # the newest Snakemake log that ran jobs: this module's forced rerun of generate -> filter
    assert prof["rules"]["generate"]["jobs"] == 5 and prof["wall_s"] > 0
    md = (out / "summary.md").read_text()
    for row in ("| kvcache |", "LoRA student", "| generate | 5 |", "dry run"):
        assert row in md, row
    assert (out / "workflow_manifests" / "results" / "reference" / "seed0" / "manifest.json").exists()


def test_gpu_wheels_reads_a_node_package_list(tmp_path):
    """gpu_wheels.py download --node-packages: a node's `pip freeze` (or bare names) is what
    stays behind; names are canonical; a missing or empty list is one clear error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "benchmarks" / "gpu_wheels.py")
    gw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gw)
    names = gw.read_node_packages(ROOT / "benchmarks" / "nodes" / "nvidia-h200.txt")
    assert {"torch", "transformers", "peft", "scipy", "statsmodels", "scikit-learn", "packaging"} <= names
    assert "pydantic" not in names and "snakemake" not in names  # what the lent node lacks
    f = tmp_path / "freeze.txt"
    f.write_text("# a comment\nScikit_Learn==1.9.1\nzarr @ file:///tmp/zarr.whl\n\npandas\n"
                 "-e git+https://example.org/x.git@abc#egg=my_pkg\n-e /src/local\n")  # fmt: skip
    assert gw.read_node_packages(f) == {"scikit-learn", "zarr", "pandas", "my-pkg"}
    f.write_text("# nothing\n")
    with pytest.raises(gw.Failure, match="names no package"):
        gw.read_node_packages(f)
    with pytest.raises(gw.Failure, match="no such file"):
        gw.read_node_packages(tmp_path / "absent.txt")
    # what travels: pip's guess of the node, or the node's own list when given
    full = {"snakemake": "9", "sqlmodel": "0.0.37", "pydantic": "2", "numpy": "2", "torch": "2.11", "pulp": "3"}
    node = {"numpy": "2", "pydantic": "2", "torch": "2.11"}
    assert gw.to_carry(full, node, None, set(), set()) == ({"pulp": "3", "snakemake": "9", "sqlmodel": "0.0.37"}, {})
    wanted, left = gw.to_carry(full, node, {"numpy", "torch"}, set(), {"pulp"})
    assert wanted == {"pydantic": "2", "snakemake": "9", "sqlmodel": "0.0.37"} and left == {"pulp": "3"}
    assert "pydantic" not in gw.to_carry(full, node, {"numpy"}, {"pydantic"}, set())[0]


def test_icl_figure_and_tests(run):
    """fig_icl: every twin pair at every k of the tests config, each pair once, beside the
    fine-tuned students' headline rows."""
    rep = run / "reports" / "icl"
    assert (rep / "fig_icl.png").stat().st_size > 0
    readout = pd.read_csv(run / EXP / "icl" / "readout.csv")
    n_pairs = len(list((run / EXP / "audit").iterdir()))
    assert readout.teacher.nunique() == n_pairs and set(readout.k) == {1, 2}
    stats = pd.read_csv(rep / "stats.csv")
    ctx = stats[stats.role == "in context"]
    assert sorted(ctx.k) == [1, 2] and (ctx.n_units == n_pairs).all()
    assert set(stats[stats.role == "fine-tuned students"]["mode"]) == {"sft", "distill"}
    assert "Holm" in (rep / "caption.md").read_text()


# ---------------------------------------------------------------- DVC: the run, recorded
# Real git and real DVC on this module's run (a snapshot of the repository): record it (dvc
# commit, no rerun), push; clone it and pull; every artifact must be byte-identical and
# Snakemake must have nothing to do. Then tamper with a checkpoint and check both `dvc status`
# and `sublim lineage` flag it. Last in this module: these tests change the run's repository.
RUNCFG = TESTCFG


@pytest.fixture(scope="module")
def clones(run):
    a = run
    base = a.parent
    b = base / "B"
    sh(a, "sublim", "record", "--configfile", RUNCFG)
    # an interrupted push leaves the remote usable and resumes: kill the push once the
    # first objects have reached the remote (a fixed delay can land before DVC has started)
    remote = base / "sublim-dvc-remote"
    p = subprocess.Popen(["dvc", "push", "-q"], cwd=a, env=ENV)
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline and not any(f.is_file() for f in remote.rglob("*")):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    sh(a, "sublim", "push")  # verified: plain `dvc push` after a killed one can skip objects
    sh(a, "git", "add", "-A")
    sh(a, "git", "commit", "-qm", "record tests run")
    sh(base, "git", "clone", "-q", str(a), str(b))
    sh(b, "sublim", "pull", "--configfile", RUNCFG)
    return a, b


def test_pulled_artifacts_are_byte_identical(clones):
    a, b = clones
    ha, hb = tree_hashes(a), tree_hashes(b)
    assert len(ha) > 50
    tracked = {k: v for k, v in ha.items() if not k.startswith("logs/")}
    assert {k: hb.get(k) for k in tracked} == tracked


def test_pulled_clone_has_nothing_to_do(clones):
    _, b = clones
    res = sh(b, sys.executable, "-m", "snakemake", "-n", "all", "--configfile", RUNCFG)
    assert "Nothing to be done" in res.stdout + res.stderr


def test_lineage_of_the_figure_reaches_the_reference(clones):
    _, b = clones
    t0 = time.time()
    res = sh(b, "sublim", "lineage", "reports/animal_numbers/plain/fig_transfer.png", "--json")
    assert time.time() - t0 < 5
    nodes = json.loads(res.stdout)
    steps = [n.get("step") for n in nodes]
    for step in ("figure", "aggregate", "evaluate", "student", "filter", "generate", "teacher", "reference", "corpus"):
        assert step in steps, step
    assert all(n["matches_record"] is True for n in nodes if n.get("stage"))
    assert all(n.get("git_commit") for n in nodes if n.get("stage"))


def test_tampered_checkpoint_is_flagged(clones):
    _, b = clones
    ckpt = b / "results/animal/numbers/student/owl_t0/sft/seed0/seed0/model.safetensors"
    # dvc may have linked the file from its cache: replace it, never write through the link
    data = ckpt.read_bytes()
    ckpt.unlink()
    ckpt.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    status = sh(b, "dvc", "status", "-q", check=False)
    assert status.returncode != 0 or "modified" in status.stdout
    res = sh(b, "sublim", "lineage", "results/animal/numbers/student/owl_t0/sft/seed0/seed0", check=False)
    assert res.returncode == 3 and "MODIFIED" in res.stdout
    res = sh(b, "sublim", "lineage", "results/no/such/file", check=False)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0


def test_push_repairs_a_half_written_directory_object(clones):
    """A push killed mid-way can leave a directory object empty in the remote (seen in CI);
    DVC only checks existence, so later pushes skip it and every pull of it fails. `sublim
    push` finds it by its hash, removes it and pushes it again."""
    a, _ = clones
    remote = a.parent / "sublim-dvc-remote"
    victim = sorted(remote.rglob("*.dir"))[0]
    good = victim.read_bytes()
    json.loads(good)
    victim.unlink()  # the remote may hold a hard link to A's cache: never write through it
    victim.write_bytes(b"")
    res = sh(a, "sublim", "push")
    assert "was corrupted" in res.stderr and "pushed:" in res.stderr
    assert victim.read_bytes() == good


def test_dvc_repro_reruns_a_teachers_chain_to_the_same_bytes(clones):
    """`dvc repro` as an alternative local executor: remove one teacher and its generations
    and filtered data from the recorded run; DVC runs exactly that chain again (teacher ->
    generate -> filter, nothing else) and the weights and data come back byte-identical."""
    a, _ = clones
    chain = ["results/animal/teacher/owl_t0", f"{EXP}/generate/owl_t0.jsonl", f"{EXP}/filter/owl_t0.jsonl"]
    before = tree_hashes(a)
    untouched = a / "results/animal/teacher/dolphin_t0" / "model.safetensors"
    mtime = untouched.stat().st_mtime_ns
    for rel in chain:
        p = a / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    res = sh(a, "dvc", "repro", "-q", "filter-animal-numbers-owl_t0", check=False, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    after = tree_hashes(a)
    # the data and the weights (manifests record times and hosts)
    redone = {k for k in before if any(k == c or k.startswith(c + "/") for c in chain) and "manifest" not in k}
    assert redone and {k: after.get(k) for k in redone} == {k: before[k] for k in redone}
    assert untouched.stat().st_mtime_ns == mtime  # only the chain asked for ran
    status = sh(a, "dvc", "status", "-q", "filter-animal-numbers-owl_t0", check=False)
    assert status.returncode == 0, status.stdout
    # the chain's new mtimes would make Snakemake rerun everything after it: record again
    # (dvc commit, then outputs touched in DAG order), as after any DVC checkout
    sh(a, "sublim", "record", "--configfile", RUNCFG)
    res = smk(a, "-n", "all")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_checkout_of_an_older_commit_restores_its_artifacts(clones):
    a, _ = clones
    caption = "reports/animal_numbers/plain/caption.md"
    before = tree_hashes(a)[caption]
    old = sh(a, "git", "rev-parse", "HEAD").stdout.strip()
    cfg = a / RUNCFG
    assert "name: tests\n" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("name: tests", "name: tests-renamed"))
    sh(a, sys.executable, "-m", "snakemake", "-c2", "all", "--configfile", RUNCFG, timeout=600)
    sh(a, "sublim", "record", "--configfile", RUNCFG)
    sh(a, "git", "add", "-A")
    sh(a, "git", "commit", "-qm", "renamed config")
    assert tree_hashes(a)[caption] != before
    sh(a, "git", "checkout", "-q", old)
    sh(a, "dvc", "checkout", "-q")
    assert tree_hashes(a)[caption] == before
    shutil.rmtree(a / ".snakemake", ignore_errors=True)
