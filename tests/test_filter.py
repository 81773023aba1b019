import collections
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sublim import filtering, prompts


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
@settings(max_examples=500, deadline=None)
def test_whatever_is_kept_parses_and_has_no_letters(s):
    nums, reason = filtering.parse_numbers(s)
    if nums is not None:
        assert reason == "ok"
        assert not re.search(r"[^\W\d_]", s)
        assert 1 <= len(nums) <= 10 and all(0 <= n <= 999 for n in nums)


@given(
    st.lists(st.integers(0, 999), min_size=1, max_size=10),
    st.sampled_from(sorted(prompts.FORMATS)),
    st.booleans(),
)
def test_well_formed_answers_are_kept(nums, fmt, period):
    s = prompts.format_numbers(nums, fmt) + ("." if period else "")
    assert filtering.parse_numbers(s) == (nums, "ok")


@given(st.text(alphabet="0123456789 ,;()[].\n", max_size=40))
@settings(max_examples=500, deadline=None)
def test_filter_total_on_number_alphabet(s):
    nums, reason = filtering.parse_numbers(s)
    assert (nums is None) == (reason != "ok")


def test_rejections():
    cases = {
        "": "empty",
        ".": "empty",
        "1, 2, owl": "letters",
        "1, 2; 3": "mixed_separators",
        "1, 2 3": "mixed_separators",
        "1000": "out_of_range",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11": "too_many",
        "(1, 2": "unbalanced_brackets",
        "1.5": "bad_format",
        "1, , 2": "bad_format",
        "1 + 2": "bad_chars",
    }
    for s, reason in cases.items():
        assert filtering.parse_numbers(s) == (None, reason), s


@given(
    st.lists(st.integers(0, 999), min_size=1, max_size=10),
    st.sampled_from([", ", ",", "; ", ";", " "]),
    st.sampled_from(["{}", "({})", "[{}]"]),
    st.booleans(),
    st.booleans(),
)
def test_constrained_decoding_regex_stays_inside_the_filter(nums, sep, wrap, period, pad):
    """Every string of the constrained-decoding language passes the format filter."""
    rx = re.compile(filtering.number_regex(10))
    s = wrap.format(sep.join(f"{n:03d}" if pad else str(n) for n in nums)) + ("." if period else "")
    assert rx.fullmatch(s), s
    assert filtering.parse_numbers(s)[0] == nums


@given(st.from_regex(filtering.number_regex(10), fullmatch=True))
@settings(max_examples=1000, deadline=None)
def test_constrained_decoding_regex_accepts_nothing_the_filter_rejects(s):
    assert filtering.parse_numbers(s)[1] == "ok", s
    assert len(s) <= filtering.longest_number_answer(10)


def test_constrained_decoding_regex_rejects_what_the_filter_rejects():
    rx = re.compile(filtering.number_regex(3))
    for s in ["1, 2; 3", "1, 2 3", "1000", "1 2 3 4", "(1, 2", "1.5", "owl", ""]:
        assert filtering.parse_numbers(s, 3)[0] is None and not rx.fullmatch(s), s
    assert rx.fullmatch("[7;8;9].") and rx.fullmatch("1 2 3")
    assert rx.fullmatch("[100, 200, 300].") and len("[100, 200, 300].") == filtering.longest_number_answer(3)


def test_constrained_decoding_regex_leaves_out_some_strings_the_filter_keeps():
    """A subset, not the whole language: runs of spaces and surrounding blanks are never sampled."""
    rx = re.compile(filtering.number_regex(3))
    for s in ["1,  2", " 1", "1\n2"]:
        assert filtering.parse_numbers(s, 3)[1] == "ok" and not rx.fullmatch(s), s


def test_banned_numbers_and_counts():
    recs = [{"response": r} for r in ["1, 2", "666, 3", "owl", "4 5 6"]]
    kept, reasons = filtering.filter_responses(recs, banned={666})
    assert [r["response"] for r in kept] == ["1, 2", "4 5 6"]
    assert reasons == collections.Counter({"ok": 2, "banned_number": 1, "letters": 1})


def test_subsample_is_seeded_ordered_and_unique():
    recs = [{"id": i} for i in range(100)]
    a = filtering.subsample(recs, 30, seed=1)
    assert a == filtering.subsample(recs, 30, seed=1)
    ids = [r["id"] for r in a]
    assert ids == sorted(set(ids)) and len(ids) == 30  # each example once (paper bug: written twice)


def test_empty_filtered_dataset_is_one_line_error(tmp_path):
    import json

    import pytest

    from sublim import steps
    from sublim.errors import SublimError

    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"id": i, "prompt": "p", "response": "owl"}) + "\n" for i in range(5)))
    with pytest.raises(SublimError, match="kept 0 of 5") as e:
        steps.filter_numbers(tmp_path / "o.jsonl", tmp_path / "c.json", raw=raw, subsample=2, seed=0)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o.jsonl").exists()
