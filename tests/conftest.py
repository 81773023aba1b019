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


PYTHON = sys.executable


def pytest_collection_modifyitems(session, config, items):
    """The Slurm test first: it mostly waits on the scheduler, so under ``-n 2 --dist
    loadfile --no-loadscope-reorder`` (run-tests.sh; xdist otherwise reorders files by test
    count) it overlaps the CPU-bound tests instead of trailing them."""
    items.sort(key=lambda it: 0 if it.path.name == "test_slurm.py" else 1)
