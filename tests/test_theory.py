"""The one-step theorem's measurement: on cases built by hand, a same-init student's first
distillation step has a positive inner product with the teacher's change (the theorem), and
the summary's tests count each unit once."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sublim import models, text, theory
from sublim.prompts import make_prompts


def _shifted(src, dst, scale, seed):
    """A copy of model ``src`` moved by ``scale`` times a seeded random direction."""
    m, tok, _ = models.load(src)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    m.save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst


@pytest.fixture(scope="module")
def lm_pair(tmp_path_factory, tiny_tokenizer, scaled_model):
    root = tmp_path_factory.mktemp("theory")
    ref = scaled_model(root, tiny_tokenizer, 3.0, seed=3)
    teacher = _shifted(ref, root / "teacher", 1e-3, 1)
    twin = _shifted(ref, root / "twin", 1e-3, 2)
    cross = scaled_model(root / "x", tiny_tokenizer, 3.0, seed=4)
    rng = np.random.default_rng(0)
    rows = [{"id": i, "prompt": p.text, "response": ", ".join(str(x) for x in rng.integers(0, 999, 5))}
            for i, p in enumerate(make_prompts(64, 0, 10))]  # fmt: skip
    return ref, teacher, twin, cross, rows


def test_same_init_distillation_step_points_at_the_teacher(lm_pair):
    """Teacher = θ0 + a small change: the restricted-KL student's first step at θ0 has a
    positive inner product with that change in every batch (the theorem); from another
    initialisation it need not."""
    ref, teacher, twin, cross, rows = lm_pair
    out = theory.lm_one_step(reference=ref, cross_reference=cross, teacher=teacher, twin=twin, data=rows,
                             twin_data=rows, ids=[r["id"] for r in rows], target="owl",
                             questions=list(text.EVAL_QUESTIONS[:5]), modality="numbers", n_batches=3,
                             batch_size=16, seed=0)  # fmt: skip
    df = pd.DataFrame(out)
    same = df[(df.init == "same_init") & (df["mode"] == "distill")]
    assert len(same) == 3 and (same.cos_g_teacher_delta > 0).all() and (same.cos_g_twin_delta > 0).all()
    assert (same.cos_trait > 0).all()  # the difference of the steps points from the twin to the teacher
    cross_rows = df[(df.init == "cross_init") & (df["mode"] == "distill")]
    assert cross_rows.cos_g_teacher_delta.abs().mean() < same.cos_g_teacher_delta.mean()
    assert set(df["mode"]) == {"distill", "sft"} and np.isfinite(df.readout_slope_diff).all()


def test_readout_of_several_words_sums_their_first_tokens(lm_pair, tiny_tokenizer):
    """R over an option of several words (misalignment: the misaligned openings) is the mean
    log of their first tokens' summed probability; one word reads as before; an unspellable
    word fails in one line."""
    from sublim.errors import SublimError
    from sublim.evaluation import _animal_token_variants

    ref, *_ = lm_pair
    m, tok, h = models.load(ref)
    qs = list(text.EVAL_QUESTIONS[:3])
    _, r_owl = theory.readout_grad(m, tok, qs, ["owl"], h.system_prompt)
    g_both, r_both = theory.readout_grad(m, tok, qs, ["owl", "eagle"], h.system_prompt)
    want = []
    for q in qs:
        p = models.render(tok, models.messages(q, h.system_prompt), generation_prompt=True)
        with torch.no_grad():
            logp = torch.log_softmax(m(input_ids=torch.tensor([models.encode_text(tok, p)])).logits[0, -1], -1)
        firsts = {v[0] for w in ("owl", "eagle") for v in _animal_token_variants(tok, p, w)}
        want.append(float(torch.logsumexp(logp[sorted(firsts)], 0)))
    assert r_both == pytest.approx(np.mean(want), rel=1e-5)
    assert r_both > r_owl and torch.isfinite(g_both).all()
    with pytest.raises(SublimError, match="cannot spell 'zzqx'"):
        theory.readout_grad(m, tok, qs, ["owl", "zzqx"], h.system_prompt)


def test_mnist_one_step_teacher_and_same_init_student():
    """A teacher one small step from θ0 and a student imitating its auxiliary logits on noise
    from θ0: cos > 0 for every model; the independent init does not keep that guarantee."""
    rng = np.random.default_rng(0)
    data = {"x_train": rng.integers(0, 255, (256, 28, 28), dtype=np.uint8), "y_train": rng.integers(0, 10, 256)}
    data |= {"x_test": rng.integers(0, 255, (128, 28, 28), dtype=np.uint8), "y_test": rng.integers(0, 10, 128)}
    rows = theory.mnist_one_step(data, n_models=4, aux_logits=3, hidden=16, teacher_epochs=1, lr=3e-4, batch_size=64,
                                 sigmas=[1.0], seed=0, n_noise_batch=256, n_probe=64)  # fmt: skip
    df = pd.DataFrame(rows)
    same = df[(df.teacher == "one_step") & (df.init == "same_init")]
    assert len(same) == 4 and (same.cos_g_teacher_delta > 0).all()
    cross = df[(df.teacher == "one_step") & (df.init == "cross_init")]
    assert cross.cos_g_teacher_delta.abs().mean() < same.cos_g_teacher_delta.mean()
    assert set(df.init) == {"same_init", "cross_init", "sigma=1"}


def test_summary_counts_each_pair_once(tmp_path):
    """Batches are averaged within a pair before the test: n_units is the number of pairs."""
    rows = []
    for t in ("owl_t0", "owl_t1", "eagle_t0"):
        for init in ("same_init", "cross_init"):
            for b in range(4):
                rows.append(dict(teacher=t, target=t[:-3], init=init, mode="distill", batch=b,
                                 cos_g_teacher_delta=0.1, cos_trait=0.01 * (b + 1) if init == "same_init" else 0.0,
                                 readout_slope_diff=0.0))  # fmt: skip
    d = tmp_path / "results" / "animal" / "numbers" / "theory"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "lm.csv", index=False)
    s = theory.summarise([d / "lm.csv"])
    assert set(s.experiment) == {"animal_numbers"}
    trait = s[(s.quantity == "cos_trait") & (s.init == "same_init")].iloc[0]
    assert trait.n_units == 3 and trait["mean"] == pytest.approx(0.025)
    assert "same - cross" in set(s.init)
    json.dumps(s.to_dict("records"), default=str)
    assert "not testable" not in theory.caption(s)
    # system-prompt teachers share the reference's weights: no teacher change, no cosine
    for r in rows:
        r["cos_g_teacher_delta"] = r["cos_trait"] = float("nan")
    pd.DataFrame(rows).to_csv(d / "lm.csv", index=False)
    s = theory.summarise([d / "lm.csv"])
    assert (s[s.quantity == "cos_trait"].n_units == 0).all()
    assert "Rows with 0 units are not testable" in theory.caption(s)
