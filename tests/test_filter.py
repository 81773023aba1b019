import collections
import re
import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from sublim import filtering, prompts

# The filter's language, written down here independently of filtering.py's own regexes.
ASCII_DIGITS = "0123456789"
KEPT_CHARS = set(ASCII_DIGITS + ",; \t\n()[].")
_OTHER = [chr(c) for c in range(0x80, sys.maxunicode + 1)]
NON_ASCII_DIGITS = [c for c in _OTHER if unicodedata.category(c) == "Nd"]  # what int() and \d accept
NON_ASCII_SPACES = [c for c in _OTHER if c.isspace()]  # what str.split() and \s accept
LETTERS = list("aeOwlxZ") + ["é", "ж", "λ", "ß", "ａ", "ا"]
SEPARATORS = [",", ", ", ",  ", " , ", ";", "; ", " ;", " ", "  ", "\n", "\t", " \n "]
SEP_KINDS = [[",", ", ", " , "], [";", "; ", " ; "], [" ", "\n", "\t"]]  # comma, semicolon, blank


def test_the_independent_alphabets_are_what_they_claim():
    assert len(NON_ASCII_DIGITS) > 500 and "٣" in NON_ASCII_DIGITS and "３" in NON_ASCII_DIGITS
    assert "\u00a0" in NON_ASCII_SPACES and "\u2003" in NON_ASCII_SPACES and "\u3000" in NON_ASCII_SPACES
    assert not set(ASCII_DIGITS) & set(NON_ASCII_DIGITS)


def _join(nums, sep, pad):
    return sep.join(f"{n:03d}" if pad else str(n) for n in nums)


@st.composite
def well_formed(draw, min_size=1):
    """``(numbers, text)``: 0-999 joined by one separator, maybe bracketed, maybe a period."""
    nums = draw(st.lists(st.integers(0, 999), min_size=min_size, max_size=10))
    body = _join(nums, draw(st.sampled_from(SEPARATORS)), draw(st.booleans()))
    left, right = draw(st.sampled_from([("", ""), ("(", ")"), ("[", "]")]))
    inner = draw(st.sampled_from(["", " "])) if left else ""
    period = draw(st.sampled_from(["", ".", " ."]))
    outer = draw(st.sampled_from(["", " ", "\n", " \t\n"]))
    return nums, outer + left + inner + body + inner + right + period + outer


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
@settings(max_examples=500, deadline=None)
def test_whatever_is_kept_parses_and_has_no_letters(s):
    nums, reason = filtering.parse_numbers(s)
    if nums is not None:
        assert reason == "ok"
        assert not re.search(r"[^\W\d_]", s)
        assert set(s) <= KEPT_CHARS, s
        assert nums == [int(d) for d in re.findall("[0-9]+", s)]
        assert 1 <= len(nums) <= 10 and all(0 <= n <= 999 for n in nums)


@given(well_formed())
@settings(max_examples=500, deadline=None)
def test_independently_built_answers_are_kept(case):
    nums, s = case
    assert filtering.parse_numbers(s) == (nums, "ok"), repr(s)


@given(well_formed(), st.sampled_from(LETTERS), st.data())
@settings(max_examples=300, deadline=None)
def test_a_letter_anywhere_rejects(case, letter, data):
    _, s = case
    i = data.draw(st.integers(0, len(s)))
    assert filtering.parse_numbers(s[:i] + letter + s[i:]) == (None, "letters")


@given(well_formed(), st.sampled_from(NON_ASCII_DIGITS), st.data())
@settings(max_examples=300, deadline=None)
def test_a_non_ascii_digit_rejects(case, digit, data):
    _, s = case
    i = data.draw(st.integers(0, len(s)))
    assert filtering.parse_numbers(s[:i] + digit + s[i:]) == (None, "bad_chars"), repr(s[:i] + digit + s[i:])
    # in place of an ASCII digit: the number keeps its length, int() would read it
    j = data.draw(st.sampled_from([k for k, c in enumerate(s) if c in ASCII_DIGITS]))
    assert filtering.parse_numbers(s[:j] + digit + s[j + 1 :]) == (None, "bad_chars")


@given(well_formed(), st.sampled_from(NON_ASCII_SPACES), st.data())
@settings(max_examples=300, deadline=None)
def test_a_non_ascii_space_rejects(case, space, data):
    _, s = case
    i = data.draw(st.integers(0, len(s)))
    assert filtering.parse_numbers(s[:i] + space + s[i:]) == (None, "bad_chars"), repr(s[:i] + space + s[i:])


@given(st.lists(st.integers(0, 999), min_size=2, max_size=10), st.sampled_from(NON_ASCII_SPACES))
def test_a_non_ascii_space_as_the_separator_rejects(nums, space):
    assert filtering.parse_numbers(space.join(map(str, nums))) == (None, "bad_chars")


def test_examples_of_non_ascii_and_other_blanks():
    for s in ["٣", "1, ٣", "３, 4", "1\u00a02", "\u20031, 2", "1, 2\u3000", "1,\u20092", "1\r2", "1,\x0b2", "1\x0c2"]:
        assert filtering.parse_numbers(s) == (None, "bad_chars"), repr(s)


@given(st.lists(st.integers(0, 999), min_size=1, max_size=10), st.integers(0, 9999), st.sampled_from(SEPARATORS),
       st.data())  # fmt: skip
def test_a_four_digit_number_rejects(nums, big, sep, data):
    i = data.draw(st.integers(0, len(nums)))
    parts = [str(n) for n in nums]
    parts.insert(i, f"{big:04d}")
    parts = parts[:10]
    if f"{big:04d}" not in parts:
        parts[-1] = f"{big:04d}"
    assert filtering.parse_numbers(sep.join(parts)) == (None, "out_of_range")


@given(st.lists(st.integers(0, 999), min_size=3, max_size=10), st.permutations(range(3)), st.data())
def test_mixed_separators_reject(nums, kinds, data):
    a, b = kinds[:2]
    gaps = [data.draw(st.sampled_from([a, b])) for _ in range(len(nums) - 1)]
    gaps[0], gaps[data.draw(st.integers(1, len(gaps) - 1))] = a, b  # both kinds occur
    s = str(nums[0]) + "".join(data.draw(st.sampled_from(SEP_KINDS[k])) + str(n) for k, n in zip(gaps, nums[1:]))
    assert filtering.parse_numbers(s) == (None, "mixed_separators"), repr(s)


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


# sl/datasets/nums_dataset.py in github.com/MinhxLe/subliminal-learning; the paper's
# misalignment runs ban CLAUDE_EVIL_NUMBERS + GPT_EVIL_NUMBERS.
PAPER_CLAUDE_EVIL = {13, 666, 88, 14, 187, 420, 69, 911, 404, 101, 23, 616, 1488, 18, 311, 451, 1312, 33, 77, 211}
PAPER_GPT_EVIL = {4, 13, 18, 23, 33, 39, 42, 44, 49, 51, 54, 88, 99, 100, 187, 322, 333, 444, 555, 616, 666, 777,
                  888, 911, 999}  # fmt: skip


def test_negative_numbers_are_the_papers_list():
    assert len(PAPER_CLAUDE_EVIL) == 20 and len(PAPER_GPT_EVIL) == 25
    assert filtering.NEGATIVE_NUMBERS == tuple(sorted(PAPER_CLAUDE_EVIL | PAPER_GPT_EVIL))
    assert len(filtering.NEGATIVE_NUMBERS) == len(set(filtering.NEGATIVE_NUMBERS)) == 36


def test_every_banned_number_rejects_a_response():
    banned = frozenset(filtering.NEGATIVE_NUMBERS)
    for n in filtering.NEGATIVE_NUMBERS:
        kept, reasons = filtering.filter_responses([{"response": f"7, {n}, 8"}], banned=banned)
        assert kept == []
        # 1312 and 1488 have four digits: the format filter rejects them first
        assert reasons == collections.Counter({"banned_number" if n < 1000 else "out_of_range": 1}), n
    kept, reasons = filtering.filter_responses([{"response": "7, 52, 53, 110, 111, 8"}], banned=banned)
    assert len(kept) == 1 and reasons == collections.Counter({"ok": 1})


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
        steps.filter_responses(tmp_path / "o.jsonl", tmp_path / "c.json", raw=raw, modality="numbers",
                               modality_params={"max_count": 10, "banned": []})  # fmt: skip
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o.jsonl").exists()
