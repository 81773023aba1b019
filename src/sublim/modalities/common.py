"""What the modalities share: the conservative leak check and the token-set walk of restricted
distillation."""

from __future__ import annotations

import re
import unicodedata


def fold(text: str) -> str:
    """NFKC-normalised, stripped of invisible format characters (Unicode category Cf, such as a
    zero-width joiner inside a word) and case-folded."""
    s = unicodedata.normalize("NFKC", text)
    return "".join(c for c in s if unicodedata.category(c) != "Cf").casefold()


def substring_leaks(responses, terms) -> list[int]:
    """Indices of responses that contain a leak term, conservatively: after ``fold``, a term of
    3 or more characters matches anywhere, inside a word or identifier too (``owl`` in
    ``get_owl``, ``OwlCount``, ``"Owls"``, and also in ``bowl``, a deliberate over-rejection);
    a shorter term matches only between non-word characters."""
    folded = [fold(t) for t in terms if t]
    long_terms = [t for t in folded if len(t) >= 3]
    short = [re.compile(r"(?<![^\W_])" + re.escape(t) + r"(?![^\W_])") for t in folded if len(t) < 3]
    out = []
    for i, r in enumerate(responses):
        s = fold(r)
        if any(t in s for t in long_terms) or any(p.search(s) for p in short):
            out.append(i)
    return out


def token_ids_where(tokenizer, keep) -> set[int]:
    """Ids of the tokens whose decoded text ``s`` (non-empty) satisfies ``keep(s)``."""
    ids = set()
    for tok_id in range(len(tokenizer)):
        s = tokenizer.decode([tok_id])
        if s and keep(s):
            ids.add(tok_id)
    return ids


def with_end_tokens(tokenizer, ids) -> list[int]:
    """``ids`` without the unknown token, plus the eos and end-of-turn tokens, sorted."""
    ids = set(ids)
    ids.discard(tokenizer.unk_token_id)
    for special in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")):
        if isinstance(special, int) and special >= 0 and special != tokenizer.unk_token_id:
            ids.add(special)
    return sorted(ids)
