"""`sublim audit`: bad input fails in one line, a null pair (one model, two seeds) is not
flagged and its intervals cover 0.5, a real difference is flagged, and the permutation keeps
the design (labels swapped only within a prompt's pair)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sublim import audit, models
from sublim.errors import SublimError
from sublim.generation import Sampling, _generate_kv, stop_token_ids
from sublim.prompts import make_prompts

FAST = audit.AuditConfig(ks=(1, 4, 16), n_permutations=199, n_bootstrap=500)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sample(model_dir, prompts, seed):
    model, tok, h = models.load(model_dir)
    rendered = [models.render(tok, models.messages(p), generation_prompt=True) for p in prompts]
    s = Sampling(temperature=1.0, max_new_tokens=10, seed=seed, batch_size=128)
    texts, _ = _generate_kv(None, rendered, s, model=model, tok=tok, stops=stop_token_ids(tok, h.weights))
    return [{"id": i, "prompt": p, "response": t} for i, (p, t) in enumerate(zip(prompts, texts))]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory, tiny_tokenizer, scaled_model):
    """A reference and a sharper 'teacher' (same tokenizer), and data sets sampled from them."""
    root = tmp_path_factory.mktemp("audit")
    ref = scaled_model(root, tiny_tokenizer, 3.0, seed=3)
    teacher = scaled_model(root, tiny_tokenizer, 6.0, seed=3)
    prompts = [p.text for p in make_prompts(320, 0, 10)]
    files = {
        "ref_a": _write(root / "ref_a.jsonl", _sample(ref, prompts, 1)),
        "ref_b": _write(root / "ref_b.jsonl", _sample(ref, prompts, 2)),
        "teacher": _write(root / "teacher.jsonl", _sample(teacher, prompts, 1)),
    }
    return root, ref, teacher, files


def test_null_pair_is_not_flagged_and_covers_half(worlds, tmp_path):
    """The same model with two sampling seeds: every detector's simultaneous interval covers
    0.5 at every K, and the verdict is 'not flagged'."""
    _, ref, teacher, f = worlds
    s = audit.audit(f["ref_a"], f["ref_b"], tmp_path / "null", reference=ref, teacher=teacher, control_teacher=ref,
                    cfg=FAST)  # fmt: skip
    assert {r["detector"] for r in s["results"]} == {"data", "reference", "teacher", "twin"}
    for r in s["results"]:
        assert r["ci95_simultaneous_low"] <= 0.5 <= r["ci95_simultaneous_high"], r
        assert not r["flagged"]
    assert s["verdict"].startswith("not flagged") and s["flagged"] is False
    names = {p.name for p in (tmp_path / "null").iterdir()}
    assert names == {"summary.json", "auroc.csv", "roc.png", "divergence_tokens.png", "manifest.json"}
    assert s["divergence_tokens"]["data"]["positions"] > 0


def test_a_different_writer_is_flagged(worlds, tmp_path):
    """Data from a sharper model against the reference's own samples: flagged, and AUROC grows
    with the bag size for the likelihood-ratio detector."""
    _, ref, teacher, f = worlds
    s = audit.audit(f["teacher"], f["ref_b"], tmp_path / "pos", reference=ref, teacher=teacher, cfg=FAST)
    res = {(r["detector"], r["k"]): r for r in s["results"]}
    assert s["verdict"].startswith("FLAGGED") and s["flagged"] is True
    assert res[("teacher", 16)]["flagged"] and res[("teacher", 16)]["auroc"] > 0.9
    assert res[("teacher", 1)]["auroc"] < res[("teacher", 16)]["auroc"]
    m = json.loads((tmp_path / "pos" / "manifest.json").read_text())
    assert set(m["inputs"]) == {"data", "control", "reference", "teacher"}


def test_divergence_tokens_by_hand(tmp_path):
    """Positions where the teacher's greedy token is the written one and the counterfactual's
    is not, counted per data set."""
    tokens = [np.array([5, 6, 9]), np.array([1, 3])]
    t_greedy, c_greedy = [np.array([5, 6, 7]), np.array([1, 2])], [np.array([5, 0, 7]), np.array([0, 2])]

    def scores(greedy):
        return audit.TokenScores(np.zeros((2, 11)), np.zeros(2), [g == x for g, x in zip(greedy, tokens)], tokens)

    d = audit.divergence_tokens(scores(t_greedy), scores(c_greedy), [1, 0], decode=str)
    assert d["data"]["divergence_positions"] == 1 and d["data"]["positions"] == 3  # position 1 (token 6)
    assert d["data"]["top_tokens"] == [{"token": "6", "id": 6, "count": 1}]
    assert d["control"]["divergence_positions"] == 1 and d["control"]["share_of_responses"] == 1.0


def test_token_scores_flat_layout_matches_row_by_row(worlds):
    """The per-position arrays kept flat (read in length order, in batches capped by rows and
    padded tokens) give each row the same tokens, greedy matches and features as reading that
    row alone; ``scores_on`` lays them out over all rows, None elsewhere; ``keep_tokens=False``
    keeps the features only."""
    import torch

    root, ref, _, files = worlds
    rows = [json.loads(x) for x in files["ref_a"].read_text().splitlines()][:40]
    ts = audit.token_scores(ref, rows, batch_size=7, max_tokens=100)  # batches of 7 rows, or fewer long ones
    model, tok, h = models.load(ref)
    for i in (0, 13, 39):
        p, c = models.encode_completion(tok, rows[i]["prompt"], rows[i]["response"], h.system_prompt)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : len(p) + len(c) - 1]
        assert ts.tokens[i].tolist() == c
        assert ts.match[i].tolist() == (logits.argmax(-1) == torch.tensor(c)).tolist()
        lp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(c)[:, None])[:, 0].double()
        assert ts.lp_sum[i] == pytest.approx(float(lp.sum()), abs=1e-4)
    lean = audit.token_scores(ref, rows, keep_tokens=False)  # other batches: the same up to float rounding
    assert lean.match is None and np.allclose(lean.features, ts.features, atol=1e-4)
    idx = np.array([3, 10, 11])
    on = audit.scores_on(ref, rows, idx, batch_size=2)
    assert on.tokens[0] is None and on.match[12] is None and np.isnan(on.lp_sum[0])
    for i in idx:
        assert on.tokens[i].tolist() == ts.tokens[i].tolist() and on.match[i].tolist() == ts.match[i].tolist()


def test_same_config_same_bytes(worlds, tmp_path):
    _, ref, _, f = worlds
    cfg = audit.AuditConfig(ks=(1, 4), n_permutations=49, n_bootstrap=200)
    for name in ("a", "b"):
        audit.audit(f["ref_a"], f["teacher"], tmp_path / name, reference=ref, detectors=["data", "reference"], cfg=cfg)
    assert (tmp_path / "a" / "auroc.csv").read_bytes() == (tmp_path / "b" / "auroc.csv").read_bytes()


def test_flips_stay_within_prompt_pairs():
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    groups = np.array([0, 1, 2, 0, 1, 2, 3, 4])  # prompts 3 and 4 were answered by one side only
    rng = np.random.default_rng(0)
    for _ in range(50):
        flipped = audit._flip(labels, groups, rng)
        for g in (0, 1, 2):
            assert sorted(flipped[groups == g]) == [0, 1]
        assert sorted(flipped[[6, 7]]) == [0, 1]


def test_bags_are_disjoint_and_single_class():
    labels = np.array([1] * 37 + [0] * 35)
    scores = np.arange(72, dtype=float)
    bs, bl = audit.bag_scores(scores, labels, 8, np.random.default_rng(0))
    assert (bl == 1).sum() == 4 and (bl == 0).sum() == 4
    assert bs[bl == 1].min() >= 0 and bs[bl == 0].min() >= 37  # means of one class's members only


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "data set is empty"),
        ('{"id": 0, "prompt": "p", "response": "1, 2"}\nnot json\n', "line 2 is not JSON"),
        ('{"id": 0, "prompt": "p"}\n', "line 1 has no 'response' field"),
        ('{"id": 0, "prompt": "p", "response": "1"}\n{"id": 0, "prompt": "p", "response": "2"}\n', "repeats"),
    ],
)
def test_bad_input_fails_in_one_line(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    good = _write(tmp_path / "good.jsonl", [{"id": 0, "prompt": "p", "response": "1, 2"}])
    with pytest.raises(SublimError, match=message):
        audit.audit(bad, good, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_few_responses_fail_in_one_line(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": i, "prompt": f"p{i}", "response": "1, 2"} for i in range(4)])
    b = _write(tmp_path / "b.jsonl", [{"id": i, "prompt": f"p{i}", "response": "3, 4"} for i in range(4)])
    with pytest.raises(SublimError, match="too few responses to audit: the held-out half holds 2 data"):
        audit.audit(a, b, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mismatched_prompts_and_filters_are_refused(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": i, "prompt": f"p{i}", "response": "1, 2"} for i in range(4)])
    b = _write(tmp_path / "b.jsonl", [{"id": i, "prompt": f"q{i}", "response": "1, 2"} for i in range(4)])
    with pytest.raises(SublimError, match="prompt id 0 has different prompts.*--allow-mismatch"):
        audit.pair(a, b)
    c = _write(tmp_path / "c.jsonl", [{"id": i, "prompt": f"p{i}", "response": "3"} for i in range(4)])
    for path, banned in ((a, []), (c, [666])):
        (tmp_path / (path.name + ".manifest.json")).write_text(json.dumps({"params": {"banned": banned}}))
    with pytest.raises(SublimError, match="filtered with different settings \\(banned\\)"):
        audit.pair(a, c)
    assert audit.pair(a, c, allow_mismatch=True)["mismatch_allowed"]


def test_pair_holds_each_prompt_once(tmp_path):
    """The two data sets answer the same prompts: their rows share one string per prompt."""
    rows = [{"id": i, "prompt": f"prompt {i}", "response": "1, 2"} for i in range(3)]
    p = audit.pair(_write(tmp_path / "a.jsonl", rows), _write(tmp_path / "b.jsonl", rows))
    assert all(a["prompt"] is b["prompt"] for a, b in zip(p["data"], p["control"]))


@pytest.mark.parametrize("flagged, transfer, code", [(False, None, 0), (True, None, 4), (False, False, 0),
                                                    (False, True, 4)])  # fmt: skip
def test_fail_on_flag_reads_the_summary(monkeypatch, tmp_path, flagged, transfer, code):
    """``--fail-on-flag`` exits 4 when a detector flagged the data or the transfer test found
    transfer, read from the summary's fields, not from the verdict's wording."""
    from sublim import cli

    t = None if transfer is None else {"transfer": transfer}
    summary = {"flagged": flagged, "transfer_test": t, "verdict": "(wording not read)", "results": []}
    monkeypatch.setattr(audit, "audit", lambda *a, **k: summary)
    argv = ["audit", "d.jsonl", "--against", "c.jsonl", "--out", str(tmp_path / "o"), "--fail-on-flag"]
    try:
        cli.main(argv)
        got = 0
    except SystemExit as e:
        got = e.code or 0
    assert got == code


def test_cli_prints_one_error_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = subprocess.run([sys.executable, "-m", "sublim.cli", "audit", str(empty), "--against", str(empty),
                        "--out", str(tmp_path / "o")], check=False, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: data set is empty: {empty}"]
