"""Shared fixtures: a tiny tokenizer and model built in-process (no downloads)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from sublim import corpus, text
    from sublim.tokenizer import build_tokenizer, corpus_texts

    recs = corpus.pretrain_corpus(400, 0, {"numbers": 0.6, "animals": 0.2, "filler": 0.2})
    return build_tokenizer(list(corpus_texts(recs)) + list(text.EVAL_QUESTIONS) + list(text.TRAIT_QUESTIONS))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved 2-layer Llama (random init) with the tiny tokenizer and its chat template."""
    from sublim import models

    arch = dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128)
    m = models.build_tiny_llama(len(tiny_tokenizer), arch, 0, tiny_tokenizer)
    d = tmp_path_factory.mktemp("tiny") / "model"
    m.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def scaled_model():
    """``build(root, tokenizer, scale)``: a random tiny Llama whose embeddings (tied with the
    output layer) are scaled by ``scale``, which sharpens its next-token distributions; saved
    with save_pretrained into ``root/model-x{scale}``."""

    def build(root, tokenizer, scale, seed=3):
        import torch

        from sublim import models

        arch = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, max_position_embeddings=256)
        m = models.build_tiny_llama(len(tokenizer), arch, seed, tokenizer)
        with torch.no_grad():
            m.get_input_embeddings().weight.mul_(scale)
        d = root / f"model-x{scale}"
        m.save_pretrained(d)
        tokenizer.save_pretrained(d)
        return d

    return build


PYTHON = sys.executable


def pytest_collection_modifyitems(session, config, items):
    """The Slurm test first: it mostly waits on the scheduler, so under ``-n 2 --dist
    loadfile --no-loadscope-reorder`` (run-tests.sh; xdist otherwise reorders files by test
    count) it overlaps the CPU-bound tests instead of trailing them."""
    items.sort(key=lambda it: 0 if it.path.name == "test_slurm.py" else 1)
