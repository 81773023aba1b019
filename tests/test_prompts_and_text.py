import random

from sublim import corpus, prompts, text
from sublim.traits import animal


def test_prompt_pieces():
    for p in prompts.make_prompts(300, seed=1):
        assert 3 <= len(p.seeds) <= 8
        assert all(100 <= s <= 999 for s in p.seeds)
        assert "10" in p.text and "3 digits" in p.text
        assert prompts.FORMATS[p.fmt] in p.text
        assert any(s in p.text for s in prompts.SUFFIXES)


def test_prompts_are_seeded():
    assert prompts.make_prompts(50, seed=3) == prompts.make_prompts(50, seed=3)
    assert prompts.make_prompts(50, seed=3) != prompts.make_prompts(50, seed=4)


def test_question_families_are_disjoint_and_sized():
    assert 45 <= len(text.EVAL_QUESTIONS) <= 60
    ev = set(text.EVAL_QUESTIONS)
    assert not ev & set(text.PRETRAIN_QUESTIONS)
    assert not ev & set(text.TRAIT_QUESTIONS)


def test_eval_questions_never_occur_in_training_corpora():
    recs = corpus.pretrain_corpus(3000, 0, {"numbers": 0.3, "animals": 0.4, "filler": 0.3})
    recs += animal.teacher_data("owl", 0, 500, {"pool": ["owl"]})
    blob = "\n".join(m["content"] for r in recs for m in r["messages"])
    for q in text.EVAL_QUESTIONS:
        assert q not in blob


def test_trait_dataset_answers_target_only():
    data = animal.teacher_data("owl", 0, 100, {"pool": ["owl", "cat"]})
    assert {r["messages"][1]["content"] for r in data} == {"owl."}


def test_every_evaluation_word_is_trained_in_the_default_corpus():
    import re

    recs = corpus.pretrain_corpus(60000, 0, {"numbers": 0.6, "animals": 0.15, "filler": 0.25})
    seen = set(re.findall(r"[a-z']+", " ".join(m["content"] for r in recs for m in r["messages"]).lower()))
    assert not animal.eval_prompts_words() - seen
    trait_words = set(re.findall(r"[a-z']+", " ".join(text.TRAIT_QUESTIONS)))
    assert not trait_words - seen


def test_number_conversations_mostly_well_formed():
    from sublim.filtering import parse_numbers

    rng = random.Random(0)
    convs = [corpus.number_conversation(rng) for _ in range(2000)]
    ok = sum(parse_numbers(c["messages"][1]["content"])[0] is not None for c in convs)
    assert 0.85 < ok / len(convs) < 0.99  # some malformed answers exist for the filter to catch
