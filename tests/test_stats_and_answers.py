import math

import numpy as np
import pandas as pd

from sublim import evaluation, report, stats


def test_parse_answer():
    animals = ["owl", "cat", "dolphin"]
    assert evaluation.parse_answer("Owl.", animals) == "owl"
    assert evaluation.parse_answer("i like cats and owls", animals) == "cat"
    assert evaluation.parse_answer("dolphins!", animals) == "dolphin"
    assert evaluation.parse_answer("bowl", animals) == "other"
    assert evaluation.parse_answer("", animals) == "other"


def test_bootstrap_ci_brackets_mean():
    x = np.random.default_rng(0).normal(5, 1, 200)
    lo, hi = stats.bootstrap_ci(x, seed=0)
    assert lo < x.mean() < hi and hi - lo < 0.5


def test_permutation_exact_and_directional():
    # 3 strata x (3 treated, 3 control), treated always higher: the most extreme relabelling
    vals, treated, strata = [], [], []
    for k, base in enumerate([0.1, 0.5, 0.9]):
        vals += [base + 0.01, base + 0.011, base + 0.012, base, base + 0.001, base + 0.002]
        treated += [True] * 3 + [False] * 3
        strata += [k] * 6
    r = stats.stratified_permutation(vals, treated, strata)
    assert r["exact"] and r["n_perm"] == 20**3
    assert math.isclose(r["p_one_sided"], 1 / 8000)
    flipped = stats.stratified_permutation(vals, [not t for t in treated], strata)
    assert flipped["p_one_sided"] == 1.0


def test_permutation_null_is_not_significant():
    rng = np.random.default_rng(1)
    ps = []
    for _ in range(40):
        v = rng.normal(size=12)
        ps.append(stats.stratified_permutation(v, [True] * 6 + [False] * 6, [0, 1] * 6)["p_one_sided"])
    assert 0.3 < np.mean(ps) < 0.7


def test_hedges_and_welch_signs():
    a, b = [1.0, 1.1, 1.2, 1.05], [0.0, 0.1, 0.05, 0.02]
    assert stats.hedges_g(a, b) > 0 > stats.hedges_g(b, a)
    t, p = stats.welch(a, b)
    assert t > 0 and p < 0.01


def test_margin_definition():
    df = pd.DataFrame(
        {
            "question_id": [0, 0, 0],
            "animal": ["owl", "cat", "dog"],
            "logp": [np.log(0.5), np.log(0.25), np.log(0.25)],
            "hits": [1, 0, 0],
            "n_samples": [1, 1, 1],
        }
    )
    d = report.per_question(df).set_index("animal")
    assert math.isclose(d.loc["owl", "margin"], np.log(2))
    assert math.isclose(d.loc["owl", "rate"], 1.0)


def test_index_from_paths_reads_conditions():
    paths = [
        "results/eval/plain/reference/seed1.csv",
        "results/eval/plain/teacher/owl.csv",
        "results/eval/plain/student/owl/sft/seed0/seed2.csv",
        "results/eval/number_prefix/student/control/distill/seed0/seed0.csv",
        "results/eval/plain/student/owl/distill/seed1/seed0.csv",
        "results/eval/plain/student/control/distill/seed1/seed1.csv",
    ]
    idx = report.index_from_paths(paths, "seed0")
    assert [e["condition"] for e in idx] == [
        "reference", "teacher", "treatment", "control", "cross_init", "cross_init_control",
    ]  # fmt: skip
    assert idx[2]["seed"] == 2 and idx[2]["mode"] == "sft" and idx[3]["variant"] == "number_prefix"
    assert idx[0]["init"] == "seed1" and idx[1]["teacher"] == "owl"


def test_caption_labels_constrained_decoding_only_when_used():
    res = pd.DataFrame(columns=["role", "is_target", "variant", "teacher", "p", "p_lo", "p_hi"])
    plain = report.caption(res, pd.DataFrame(), "cfg", "0" * 64)
    labelled = report.caption(res, pd.DataFrame(), "cfg", "0" * 64, constrained_decoding=True)
    assert "Constrained decoding" not in plain
    assert "Constrained decoding: ON" in labelled and "not the paper's sample-then-filter" in labelled
