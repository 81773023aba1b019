"""The divergence-token ablation: masked positions carry no loss; the mask is the pair's rule;
masked modes plan, validate and train through the student step."""

import json

import numpy as np
import pytest
import torch
from test_training import _examples, _load

from sublim import divergence, models, steps, training
from sublim.errors import SublimError


def test_masked_positions_leave_the_loss_and_the_teachers_rows_alike(tiny_model_dir):
    m, tok = _load(tiny_model_dir)
    ex = _examples(tok, 3)
    n = [len(e.input_ids) - e.n_prompt for e in ex]
    masks = [[j % 2 == 0 for j in range(k)] for k in n]  # every other completion token
    for e, mk in zip(ex, masks):
        e.loss_mask = mk
    inp, att, rows, cols = training._batch(ex, tok.pad_token_id, teacher=False)
    kept = [t for e, mk in zip(ex, masks) for t, keep in zip(e.input_ids[e.n_prompt :], mk) if keep]
    assert inp[rows, cols + 1].tolist() == kept
    t_inp, _, t_rows, t_cols = training._batch(ex, tok.pad_token_id, teacher=True)
    assert t_inp[t_rows, t_cols + 1].tolist() == kept  # the teacher's rendering, the same positions
    # the loss is the mean over the kept positions only: the unmasked loss restricted to them
    batch = {"student": (inp, att, rows, cols)}
    with torch.no_grad():
        masked = training._loss("sft", m, None, batch, None).item()
        for e in ex:
            e.loss_mask = None
        full = training._batch(ex, tok.pad_token_id, teacher=False)
        logits = training._completion_logits(m, *full)
        per = torch.nn.functional.cross_entropy(logits, full[0][full[2], full[3] + 1], reduction="none")
        keep = torch.tensor([b for mk in masks for b in mk])
    assert masked == pytest.approx(per[keep].mean().item(), rel=1e-5)
    # a wrong-length mask is one line, not a silent shift
    ex[0].loss_mask = [True]
    with pytest.raises(SublimError, match="loss mask of 1 positions"):
        training._batch(ex, tok.pad_token_id, teacher=False)


def test_an_all_true_mask_trains_exactly_as_no_mask(tiny_model_dir):
    outs = []
    for masked in (False, True):
        m, tok = _load(tiny_model_dir)
        ex = _examples(tok, 8)
        if masked:
            for e in ex:
                e.loss_mask = [True] * (len(e.input_ids) - e.n_prompt)
        cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, lr=1e-2, seed=3)
        outs.append(training.train(m, ex, cfg, pad_id=tok.pad_token_id)[0].state_dict())
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_a_fully_masked_batch_leaves_the_weights_alone(tiny_model_dir):
    """No NaN, and no update: not even AdamW's momentum from the batches before it moves the
    weights (the second batch is fully masked; the first is not)."""
    m, tok = _load(tiny_model_dir)
    ex = _examples(tok, 8)
    cfg = training.TrainConfig(mode="sft", epochs=1, batch_size=4, lr=1e-2, seed=1)
    order = training.epoch_batches([e.n_prompt for e in ex], 4, cfg.seed, 0)
    for i in order[1]:
        ex[i].loss_mask = [False] * (len(ex[i].input_ids) - ex[i].n_prompt)
    with pytest.raises(training.Interrupted):  # trains in place: m holds the first step's weights
        training.train(m, ex, cfg, pad_id=tok.pad_token_id, stop_after=1)
    first = {k: v.clone() for k, v in m.state_dict().items()}
    m2, _ = _load(tiny_model_dir)
    out, info = training.train(m2, ex, cfg, pad_id=tok.pad_token_id)
    assert all(torch.equal(v, first[k]) for k, v in out.state_dict().items())
    assert info["steps"] == 2


def test_the_mask_is_the_pairs_rule(monkeypatch):
    """Masked: the trait teacher's greedy token is the written one and the twin's is not;
    nothing else (a hand-built case). Teachers that tokenise differently are refused."""
    from sublim import audit

    tokens = [np.array([5, 6, 7, 8], dtype=np.int32)]
    a_match = [np.array([True, True, False, False])]
    b_match = [np.array([True, False, True, False])]

    def fake(model_dir, rows, **kw):
        match = a_match if model_dir == "A" else b_match
        return audit.TokenScores(np.zeros((1, 11)), np.zeros(1), match, tokens)

    monkeypatch.setattr(audit, "token_scores", fake)
    masks, info = divergence.divergence_mask("A", "B", [{"id": 0}], [[5, 6, 7, 8]])
    assert masks == [[True, False, True, True]]
    assert info["masked_positions"] == 1 and info["positions"] == 4 and info["rows_with_a_masked_position"] == 1
    with pytest.raises(SublimError, match="tokenise the response differently"):
        divergence.divergence_mask("A", "B", [{"id": 0}], [[5, 6, 7, 9]])
    assert divergence.twin_pair("neutral_owl_t1") == ("owl_t1", "neutral_owl_t1")
    assert divergence.twin_pair("owl_t1") == ("owl_t1", "neutral_owl_t1")
    for other in ("base_t0", "educational_misaligned_t0"):
        with pytest.raises(SublimError, match="is neither"):
            divergence.twin_pair(other)


def test_masked_student_step_records_its_mask(tiny_model_dir, tmp_path):
    """The student step with a masked mode: the pair read the data, the manifest says how many
    positions were masked and which teachers defined them; a masked mode without its pair and
    mask teachers for an unmasked mode are one-line errors. The same teacher twice masks
    nothing, so that student is the unmasked one, weight for weight."""
    data = tmp_path / "data.jsonl"
    steps.write_jsonl(data, [{"id": i, "prompt": f"numbers: {i}, 2, 3.", "response": "4 5 6"} for i in range(8)])
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"ids": list(range(8))}))
    kw = dict(reference=tiny_model_dir, teacher=tiny_model_dir, data=data, ids=ids, modality="numbers",
              subsample=8, subsample_seed=0, seed=0, train={"epochs": 1, "lr": 1e-2, "batch_size": 4})  # fmt: skip
    steps.train_student(tmp_path / "m", mode="sft_masked", mask_teachers=(tiny_model_dir, tiny_model_dir), **kw)
    steps.train_student(tmp_path / "u", mode="sft", **kw)
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["divergence_mask"]["masked_positions"] == 0 and man["divergence_mask"]["positions"] > 0
    assert "mask_twin" in man["inputs"] and man["params"]["mode"] == "sft_masked"
    a, b = models.load(tmp_path / "m")[0].state_dict(), models.load(tmp_path / "u")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(SublimError, match=r"mask teachers \(--mask-teachers\) are missing"):
        steps.train_student(tmp_path / "x", mode="distill_masked", **kw)
    with pytest.raises(SublimError, match="given to an unmasked mode"):
        steps.train_student(tmp_path / "y", mode="sft", mask_teachers=(tiny_model_dir, tiny_model_dir), **kw)


def test_the_masking_test_pairs_each_twin_pair_once_and_finds_a_planted_drop():
    """report's masking rows: per twin pair, the fair contrast unmasked minus masked. A trait
    that rides on the masked positions (planted in the unmasked treatment students only) is
    found; every model of the four arms enters once."""
    from pathlib import Path

    import pandas as pd
    import yaml

    from sublim import report
    from sublim.config import validate
    from sublim.design import Design

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    cfg.update(yaml.safe_load((root / "configs" / "masking.yaml").read_text()))
    cfg = validate(cfg)
    d = Design(cfg)
    (exp,) = d.experiments
    rng = np.random.default_rng(0)
    rows = []
    for m in d.table(exp):
        for a in cfg["animal_pool"]:
            v = rng.normal(0.05, 0.01)
            if m["arm"] == "treatment" and m.get("mode") in ("sft", "distill") and a == m["target"]:
                v += 0.05
            rows.append({**m, "variant": "plain", "animal": a, "p": v, "margin": v, "rate": v})
    t = report.test_table(pd.DataFrame(rows))
    mk = t[t["contrast"] == "masking"].set_index(["mode", "metric"])
    assert set(mk.index.get_level_values("mode")) == {"sft_masked", "distill_masked", "distill_full_masked"}
    assert mk.loc[("sft_masked", "p"), "estimate"] > 0.03 and mk.loc[("sft_masked", "p"), "p_one_sided"] < 0.01
    assert abs(mk.loc[("distill_full_masked", "p"), "estimate"]) < 0.03  # nothing planted there
    studs = pd.DataFrame(d.table(exp))
    studs = studs[studs["role"] == "student"]
    for (mode, _), r in mk.iterrows():
        models = r["models"].split(";")
        want = studs[studs["arm"].isin(["treatment", "neutral"]) & studs["mode"].isin([mode, mode[: -len("_masked")]])]
        assert len(models) == len(set(models)) == r["n_models"] and set(models) == set(want["model_id"])
        assert r["n_units"] == want["teacher"].nunique() // 2
