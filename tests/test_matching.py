"""The behaviourally matched reference (src/sublim/matching.py): another initialisation
distilled towards the teachers' reference moves towards it, is saved as a reference with its
KL before and after, and the config refuses what it cannot build, in one line."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from sublim.config import validate
from sublim.errors import SublimError

ROOT = Path(__file__).resolve().parents[1]


def _model(root, tok, seed):
    from sublim import models

    arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128)
    m = models.build_tiny_llama(len(tok), arch, seed, tok)
    d = root / f"seed{seed}"
    m.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_matching_moves_the_second_seed_towards_the_target(tmp_path, tiny_tokenizer):
    from sublim import corpus, matching, models, steps, training

    recs = corpus.pretrain_corpus(300, 1, {"numbers": 0.6, "animals": 0.2, "filler": 0.2})
    path = tmp_path / "corpus.jsonl"
    steps.write_jsonl(path, recs)
    target, start = _model(tmp_path, tiny_tokenizer, 0), _model(tmp_path, tiny_tokenizer, 1)
    train = {"epochs": 2, "lr": 3e-3, "batch_size": 16, "warmup_steps": 2, "checkpoint_every": 100}
    res = matching.match_reference(tmp_path / "match1", corpus=path, target=target, start=start, seed=1,
                                   n_conversations=200, heldout=60, train=train, threads=1)  # fmt: skip
    assert res["kl_to_target_after"] < 0.5 * res["kl_to_target_before"]
    m = json.loads((tmp_path / "match1" / "manifest.json").read_text())
    assert m["matching"] == res and m["params"]["kind"] == "matched"
    assert set(m["inputs"]) == {"corpus", "target", "start"}
    model, tok, _ = models.load(tmp_path / "match1")  # a plain reference directory
    ex = training.Example(models.encode_text(tok, models.render(tok, recs[0]["messages"], generation_prompt=False)), 0)
    assert 0.0 <= matching.mean_kl(models.load(target)[0], model, [ex]) < res["kl_to_target_before"]
    with pytest.raises(SublimError, match="exceeds the corpus"):
        matching.match_reference(tmp_path / "m2", corpus=path, target=target, start=start, seed=1,
                                 n_conversations=290, heldout=60, train=train)  # fmt: skip


def test_matched_config_and_design():
    from sublim.design import Design

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    over = yaml.safe_load((ROOT / "configs" / "matched.yaml").read_text())
    cfg["reference"].update(over["reference"])
    cfg["students"] = {**cfg["students"], **over["students"]}
    d = Design(validate(copy.deepcopy(cfg)))
    assert d.refs == ["seed0", "seed1", "match1"] and d.cross_ref == "seed1" and d.matched_ref == "match1"
    matched = [s for s in d.students() if s.arm.startswith("matched")]
    assert len(matched) == 12 and {s.init for s in matched} == {"match1"} and {s.mode for s in matched} == {"distill"}
    bad = copy.deepcopy(cfg)
    bad["reference"]["matched"] = {"seed": 0}
    with pytest.raises(SublimError, match="reference.matched.seed': 0 must be one of reference.seeds other than"):
        validate(bad)
    bad["reference"]["matched"] = {"seed": 5}
    with pytest.raises(SublimError, match="reference.matched.seed'"):
        validate(bad)
    bad["reference"]["matched"] = None
    with pytest.raises(SublimError, match="matched arms need reference.matched"):
        validate(bad)
