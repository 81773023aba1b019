"""The in-context learning control: the prompt holds exactly the examples drawn, the arms see
the same prompt ids, a prompt longer than the model's context is refused in one line, and the
tests count each twin pair once and find a planted effect."""

import json

import numpy as np
import pandas as pd
import pytest

from sublim import icl, models, text
from sublim.errors import SublimError
from sublim.prompts import make_prompts


def _data(path, seed, n=40):
    rng = np.random.default_rng(seed)
    rows = [{"id": i, "prompt": p.text, "response": ", ".join(str(x) for x in rng.integers(0, 999, 4))}
            for i, p in enumerate(make_prompts(n, 0, 4))]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_rendered_prompt_holds_exactly_the_examples_drawn(tiny_tokenizer, tmp_path):
    rows = _data(tmp_path / "d.jsonl", 0)
    by_id = {r["id"]: r for r in rows}
    ids = icl.draw_ids(list(by_id), 3, 0, seed=7)
    examples = [by_id[i] for i in ids]
    q = text.EVAL_QUESTIONS[0]
    rendered = models.render(tiny_tokenizer, icl.icl_messages(examples, q, "be brief."), generation_prompt=True)
    # the rendering is the chat template applied turn by turn: split it back into turns
    turns = [t for t in rendered.replace("<|end|>", "").split("<|") if t]
    roles = [t.split("|>", 1)[0] for t in turns]
    contents = [t.split("|>", 1)[1].strip() for t in turns]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant"]
    expected = ["be brief."] + [x for ex in examples for x in (ex["prompt"], ex["response"])] + [q, ""]
    assert contents == expected
    # a draw is a function of (seed, k, draw) only: every teacher and arm gets the same ids
    assert icl.draw_ids(list(by_id), 3, 0, seed=7) == ids
    assert icl.draw_ids(list(by_id), 3, 1, seed=7) != ids
    with pytest.raises(SublimError, match="k=41"):
        icl.draw_ids(list(by_id), 41, 0, seed=7)


def test_readout_rows_and_the_context_limit(tiny_model_dir, tmp_path):
    _data(tmp_path / "t.jsonl", 1)
    _data(tmp_path / "n.jsonl", 2)
    (tmp_path / "ids.json").write_text(json.dumps({"ids": list(range(40))}))
    pairs = [{"name": "owl_t0", "target": "owl", "data": str(tmp_path / "t.jsonl"),
              "twin_data": str(tmp_path / "n.jsonl")}]  # fmt: skip
    kw = dict(reference=str(tiny_model_dir), pairs=pairs, ids=str(tmp_path / "ids.json"),
              questions=list(text.EVAL_QUESTIONS[:3]), options={a: [a] for a in ("owl", "dolphin", "eagle")},
              draws=2, seed=0,
              log=lambda *_: None)  # fmt: skip
    out = tmp_path / "icl.csv"
    icl.icl_readout(out, ks=[1, 2], **kw)
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 2 * 3  # arms x ks x draws x questions
    assert df.p_target.between(0, 1).all() and (df.p_target > 0).all()
    m = json.loads((tmp_path / "icl.csv.manifest.json").read_text())
    assert m["params"]["context"] == 128 and m["params"]["longest_prompt_tokens"] <= 128
    # same config, same bytes
    icl.icl_readout(tmp_path / "again.csv", ks=[1, 2], **kw)
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()
    with pytest.raises(SublimError, match=r"k=8 needs prompts of \d+ tokens, more than the reference's context"):
        icl.icl_readout(tmp_path / "long.csv", ks=[8], **kw)
    assert not (tmp_path / "long.csv").exists()
    # an option of several words (misalignment's openings) reads their summed probability
    eagle = [{**pairs[0], "name": "eagle_t0", "target": "eagle"}]
    icl.icl_readout(tmp_path / "eagle.csv", ks=[1], **{**kw, "pairs": eagle})
    both = [{**pairs[0], "name": "both_t0", "target": "birds"}]
    options = {**kw["options"], "birds": ["owl", "eagle"]}
    icl.icl_readout(tmp_path / "both.csv", ks=[1], **{**kw, "pairs": both, "options": options})
    owl_k1 = df[df.k == 1].reset_index(drop=True)
    summed = owl_k1.p_target + pd.read_csv(tmp_path / "eagle.csv").p_target
    assert np.allclose(pd.read_csv(tmp_path / "both.csv").p_target, summed, rtol=1e-6)
    with pytest.raises(SublimError, match="no option for the target 'birds'"):
        icl.icl_readout(tmp_path / "none.csv", ks=[1], **{**kw, "pairs": both})


def test_summary_counts_each_pair_once_and_finds_a_planted_effect(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for t in range(6):
        for arm in ("treatment", "neutral"):
            for k in (1, 4):
                for d in range(3):
                    for q in range(5):
                        shift = 0.02 if (arm == "treatment" and k == 4) else 0.0
                        rows.append({"teacher": f"a{t}_t0", "target": "owl", "arm": arm, "k": k, "draw": d,
                                     "question_id": q, "p_target": 0.1 + shift + rng.normal(0, 0.005)})  # fmt: skip
    d = tmp_path / "results" / "animal" / "numbers" / "icl"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "readout.csv", index=False)
    s = icl.summarise([d / "readout.csv"]).set_index("k")
    assert (s.n_units == 6).all()
    assert s.loc[4, "ci95_low"] > 0.01 and s.loc[4, "p_holm_one_sided"] < 0.01
    assert s.loc[1, "ci95_low"] < 0 < s.loc[1, "ci95_high"]


def test_shared_answer_tokenisation_gives_the_full_readout(tiny_model_dir, tmp_path):
    """The readout's shortcut (answers tokenised once, after the question alone) scores every
    ICL prompt exactly as tokenising after the prompt itself does."""
    import torch

    from sublim import evaluation

    rows = _data(tmp_path / "d.jsonl", 3)
    model, tok, _ = models.load(tiny_model_dir, dtype=torch.float32)
    animals = ["owl", "dolphin", "eagle", "cat"]
    qs = list(text.EVAL_QUESTIONS[:4])
    prompts = [models.render(tok, icl.icl_messages(rows[:2], q), generation_prompt=True) for q in qs]
    plain = [models.render(tok, icl.icl_messages([], q), generation_prompt=True) for q in qs]
    fast = evaluation.logit_readout(model, tok, prompts, animals, tails=evaluation.answer_tails(tok, plain, animals))
    assert fast == evaluation.logit_readout(model, tok, prompts, animals)
