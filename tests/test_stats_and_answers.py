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


def test_t_interval_brackets_mean_and_widens_with_fewer_units():
    x = np.random.default_rng(0).normal(1.0, 0.1, size=30)
    m, lo, hi = stats.t_interval(x)
    assert lo < m < hi and abs(m - 1.0) < 0.05
    _, lo3, hi3 = stats.t_interval(x[:3])
    assert hi3 - lo3 > hi - lo


def test_holm_matches_statsmodels_and_keeps_nan():
    p = stats.holm([0.01, 0.04, float("nan"), 0.03])
    assert math.isnan(p[2])
    assert np.allclose(p[[0, 1, 3]], [0.03, 0.06, 0.06])


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


def test_caption_labels_constrained_decoding_only_when_used():
    res = pd.DataFrame(columns=["role", "arm", "model_id", "variant"])
    plain = report.caption(res, pd.DataFrame(), pd.DataFrame(), {}, "cfg", "0" * 64)
    labelled = report.caption(res, pd.DataFrame(), pd.DataFrame(), {}, "cfg", "0" * 64, constrained_decoding=True)
    assert "Constrained decoding" not in plain
    assert "Constrained decoding: ON" in labelled and "not the paper's sample-then-filter" in labelled
