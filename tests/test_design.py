"""The design table: what it lists, fair twins, and that no model is counted twice in a test."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sublim import report, stats
from sublim.config import validate
from sublim.design import Design
from sublim.traits import animal

ROOT = Path(__file__).resolve().parents[1]


def _cfg(path):
    return validate(yaml.safe_load(Path(path).read_text()))


def _count_by_hand(cfg):
    """Students and teachers a config asks for, counted from the config alone."""
    n_students, teachers = 0, set()
    for e in cfg["students"]["matrix"]:
        default = cfg["teacher"]["seeds"][:1] if e["arm"] == "base" else cfg["teacher"]["seeds"]
        reps = e.get("teacher_seeds", default)
        seeds = e.get("seeds", cfg["students"]["seeds"])
        kind = {"treatment": "trait", "cross_init": "trait", "neutral": "neutral",
                "cross_init_neutral": "neutral", "base": "base"}[e["arm"]]  # fmt: skip
        targets = [None] if kind == "base" else cfg["animals"]
        teachers |= {(kind, t, k) for t in targets for k in reps}
        n_students += len(e["modes"]) * len(seeds) * len(targets) * len(reps)
    return n_students, teachers


@pytest.mark.parametrize("path", ["config.yaml", "tests/config.yaml", "configs/qwen2.5-7b.yaml"])
def test_design_table_lists_the_expected_runs(path):
    cfg = _cfg(ROOT / path)
    d = Design(cfg)
    n_students, teachers = _count_by_hand(cfg)
    assert [e.modality for e in d.experiments] == [e["modality"] for e in cfg["experiments"]]
    for exp in d.experiments:  # every modality's table lists the same matrix
        table = pd.DataFrame(d.table(exp))
        assert (table["role"] == "student").sum() == n_students
        assert table["model_id"].is_unique
        assert len(d.teachers(exp)) == len(teachers)
        # base is the reference itself: not a separate model in the table
        assert (table["role"] == "teacher").sum() == sum(1 for k, _, _ in teachers if k != "base")


def test_qwen_preset_matrix():
    d = Design(_cfg(ROOT / "configs/qwen2.5-7b.yaml"))
    assert [e.modality for e in d.experiments] == ["numbers", "code", "cot"]
    for exp in d.experiments:
        arms = pd.DataFrame(d.table(exp)).query("role == 'student'")["arm"].value_counts().to_dict()
        # 19 animals x 3 teacher seeds, one student each; base: one teacher, five seeds
        assert arms == {"treatment": 57, "neutral": 57, "base": 5}


def test_twins_share_seed_questions_and_order():
    cfg = _cfg(ROOT / "config.yaml")
    d = Design(cfg)
    (exp,) = d.experiments
    ts = {t.id: t for t in d.teachers(exp)}
    owl, twin = ts["owl_t0"], ts["neutral_owl_t0"]
    assert d.teacher_seed(owl) == d.teacher_seed(twin) != d.teacher_seed(ts["owl_t1"])
    assert d.generation_seed(exp, owl) == d.generation_seed(exp, twin)
    rec = animal.recipe(cfg)
    a = animal.teacher_data("owl", d.teacher_seed(owl), 200, rec)
    b = animal.teacher_data(None, d.teacher_seed(twin), 200, rec)
    assert [r["messages"][0] for r in a] == [r["messages"][0] for r in b]  # same questions, same order
    answers = [r["messages"][1]["content"] for r in b]
    assert {x.rstrip(".") for x in answers} <= set(cfg["animal_pool"]) and len(set(answers)) > 10
    assert {r["messages"][1]["content"] for r in a} == {"owl."}


def test_every_twin_pair_writes_its_own_data():
    """Twins share a generation seed (common random numbers); pairs never do, so the neutral
    twins of system-prompt teachers (one model) are independent draws, not one copy."""
    cfg = _cfg(ROOT / "configs/qwen2.5-7b.yaml")
    d = Design(cfg)
    every = set()
    for exp in d.experiments:  # per modality; and no two modalities share a seed
        seeds = {}
        for t in d.teachers(exp):
            seeds.setdefault(d.generation_seed(exp, t), set()).add((t.target, t.replicate))
        assert all(len(pairs) == 1 for pairs in seeds.values())
        assert len(seeds) == 19 * 3 + 1  # one per twin pair, one for base
        assert not every & set(seeds)
        every |= set(seeds)


def _fake_results(cfg, seed=0, effect=0.0):
    """A results table with the design's models and random readouts (treatment students of
    animal A get ``effect`` added to P(A))."""
    d = Design(cfg)
    (exp,) = d.experiments
    rng = np.random.default_rng(seed)
    rows = []
    for m in d.table(exp):
        for a in cfg["animal_pool"]:
            v = rng.normal(0.05, 0.01)
            if m["arm"] in ("treatment", "cross_init") and a == m["target"]:
                v += effect
            rows.append({**m, "variant": "plain", "animal": a, "p": v, "margin": v, "rate": v})
    return pd.DataFrame(rows), d, exp


def test_no_model_is_counted_twice_in_any_test():
    cfg = _cfg(ROOT / "config.yaml")
    res, d, exp = _fake_results(cfg)
    tests = report.test_table(res)
    assert len(tests) > 0
    table = pd.DataFrame(d.table(exp))
    studs = table[table["role"] == "student"]
    for _, t in tests.iterrows():
        models = t["models"].split(";")
        assert len(models) == len(set(models)) == t["n_models"], (t["contrast"], t["mode"])
        if t["contrast"] == "specificity":
            expect = studs[(studs["arm"] == "treatment") & (studs["mode"] == t["mode"])]
            assert t["n_units"] == expect["teacher"].nunique()
        else:
            arm_t, arm_c = t["arms"].split(" vs ")
            expect = studs[studs["arm"].isin([arm_t, arm_c]) & (studs["mode"] == t["mode"])]
            assert t["n_units"] == expect["teacher"].nunique() // 2  # twin pairs
        assert set(models) == set(expect["model_id"])


def test_tests_find_a_planted_effect_and_report_both_sides():
    cfg = _cfg(ROOT / "config.yaml")
    res, _, _ = _fake_results(cfg, effect=0.05)
    t = report.test_table(res).set_index(["contrast", "mode", "metric"])
    row = t.loc[("neutral", "distill", "p")]
    assert row["headline"] and row["verdict"] == "holds"
    assert row["p_one_sided"] < row["p_two_sided"] and row["p_holm_one_sided"] >= row["p_one_sided"]
    assert t.loc[("specificity", "distill", "p"), "estimate"] > 0.03
    res, _, _ = _fake_results(cfg, effect=-0.05)
    t = report.test_table(res).set_index(["contrast", "mode", "metric"])
    assert t.loc[("neutral", "sft", "p"), "verdict"] == "shift AWAY from the target"


def test_a_shift_away_says_whether_the_other_options_share_it():
    """The caption's profile of a shift away: a drop on the target alone leaves the other
    options unmoved; a drop on every option moves them as much; a target up with the others
    down moves them the other way. Readouts without noise, so the values are exact."""
    cfg = _cfg(ROOT / "config.yaml")
    res, _, _ = _fake_results(cfg)
    res["p"] = 0.05
    studs = (res["role"] == "student") & (res["arm"] == "treatment")
    own = res["animal"] == res["target"]

    def profile(r):
        return report.away_profile(r, "plain", "neutral", "sft")

    target_only = res.copy()
    target_only.loc[studs & own, "p"] -= 0.02
    prof = profile(target_only)
    assert prof["n_other_options"] == len(cfg["animal_pool"]) - 1 and prof["n_pairs"] == 6
    assert prof["target"] == pytest.approx(-0.02) and prof["others"] == pytest.approx(0, abs=1e-12)
    every = res.copy()
    every.loc[studs, "p"] -= 0.02
    prof = profile(every)
    assert prof["others"] == pytest.approx(-0.02) and prof["target_minus_others"] == pytest.approx(0, abs=1e-12)
    assert prof["pairs_others_same_sign"] == 6
    opposite = res.copy()
    opposite.loc[studs & own, "p"] += 0.02
    opposite.loc[studs & ~own, "p"] -= 0.01
    prof = profile(opposite)
    assert prof["pairs_others_same_sign"] == 0 and prof["target_minus_others"] == pytest.approx(0.03)
    every["p"] += np.random.default_rng(0).normal(0, 1e-4, len(every))  # a testable shift away
    text = report.caption(every, report.test_table(every), report.arm_table(every), {}, "cfg", "0" * 64)
    line = next(x for x in text.splitlines() if x.startswith("- neutral/sft: the readout's 19 other options"))
    assert "moved by -0.02" in line and "in 6 of 6 pairs" in line
    assert report.away_profile(res, "plain", "no_such_contrast", "sft") is None


def test_paired_contrast_p_values_are_uniform_under_the_null():
    from scipy import stats as ss

    rng = np.random.default_rng(1)
    p1 = [stats.paired_contrast(rng.normal(size=8), rng.normal(size=8), seed=i)["p_one_sided"] for i in range(400)]
    assert ss.kstest(p1, "uniform").pvalue > 0.01


def test_specificity_permutation_is_exact_and_valid():
    from scipy import stats as ss

    rng = np.random.default_rng(2)
    animals = ["a", "b", "c"]
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    ps = [stats.specificity(rng.normal(size=(6, 3)), labels, animals, seed=i)["p_one_sided"] for i in range(150)]
    r = stats.specificity(rng.normal(size=(6, 3)), labels, animals)
    assert r["perm_exact"] and r["n_perm"] == 90
    assert ss.kstest(ps, "uniform").pvalue > 0.001  # discrete (90 relabellings): a loose check
    planted = rng.normal(size=(6, 3)) * 0.01
    for t, a in enumerate(labels):
        planted[t, animals.index(a)] += 1
    assert stats.specificity(planted, labels, animals)["p_one_sided"] == pytest.approx(1 / 90)


def test_references_are_drawn_teachers_own_first():
    """The figures draw the teachers' own reference first (black): seed0 for Llama teachers,
    neox0 for GPT-NeoX teachers; then the same family's second seed, then other families."""
    names = ["reference seed1", "reference neox0", "reference seed0"]
    assert sorted(names, key=report._ref_order) == ["reference seed0", "reference seed1", "reference neox0"]
    by_neox = sorted(names, key=lambda n: report._ref_order(n, "neox0"))
    assert by_neox == ["reference neox0", "reference seed0", "reference seed1"]
