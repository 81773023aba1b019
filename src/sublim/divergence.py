"""The divergence-token ablation (Schrodi et al. 2025), the audit issue's masking test.

Divergence tokens are the positions of a response where the trait teacher's greedy choice is
the written token while its neutral twin's greedy choice is not. If the trait rides on them,
a student trained with those positions masked from its loss should take less of it.

A masked mode (``sft_masked``, ``distill_masked``, ``distill_full_masked``) trains as its
base mode with the loss on the other positions only. The mask is the same rule for every arm
of a twin pair, applied to the arm's own data: the treatment student's responses (written by
the trait teacher) and the neutral student's (written by its twin) are both masked where
*the pair's trait teacher* agrees with the written token and *its twin* does not, so a masked
treatment student and its masked control differ in the data alone, as the unmasked ones do.
Each teacher reads a response in its own rendering (its own system prompt), as the audit's
``token_scores`` does.
"""

from __future__ import annotations

import numpy as np

from .errors import SublimError

SUFFIX = "_masked"


def base_mode(mode: str) -> str:
    """``sft_masked`` -> ``sft``; an unmasked mode is its own base."""
    return mode.removesuffix(SUFFIX)


def is_masked(mode: str) -> bool:
    return mode.endswith(SUFFIX)


def twin_pair(teacher_id: str) -> tuple[str, str]:
    """``(trait teacher id, neutral twin id)`` of the pair a teacher belongs to."""
    if teacher_id.startswith(("base_", "educational_")):
        raise SublimError(f"masked modes need a trait teacher or its neutral twin; {teacher_id} is neither")
    trait = teacher_id.removeprefix("neutral_")
    return trait, f"neutral_{trait}"


def divergence_mask(trait_teacher, twin, rows: list[dict], completions: list[list[int]], *, threads=None):
    """Per row, a list of booleans over its completion tokens: True where the position keeps
    its loss, False at a divergence token. ``completions`` are the student's completion token
    ids; both teachers must tokenise every response the same way. Returns ``(masks, info)``."""
    from .audit import token_scores

    a = token_scores(trait_teacher, rows, threads=threads)
    b = token_scores(twin, rows, threads=threads)
    masks, n_pos, n_div = [], 0, 0
    for i, c in enumerate(completions):
        if not (np.array_equal(a.tokens[i], c) and np.array_equal(b.tokens[i], c)):
            raise SublimError(
                f"row {rows[i].get('id')}: the teachers and the student tokenise the response differently"
            )
        div = a.match[i] & ~b.match[i]
        masks.append([bool(x) for x in ~div])
        n_pos += len(c)
        n_div += int(div.sum())
    info = {"positions": n_pos, "masked_positions": n_div, "masked_share": n_div / max(1, n_pos),
            "rows_with_a_masked_position": sum(not all(m) for m in masks)}  # fmt: skip
    return masks, info
