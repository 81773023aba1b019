"""Model-level tests: the unit is a trained model (a teacher, its students averaged).

* ``paired_contrast``: a trait teacher against its neutral twin (same recipe, same seed, same
  prompts), on the students' readout for the twin pair's target. Paired t-test
  (``scipy.stats.ttest_rel``) with its t-based 95% interval, and the exact sign-flip
  permutation test (``scipy.stats.permutation_test``, pairs swapped as whole models).
* ``specificity``: do the students of A's teachers prefer A more than the students of the
  other animals' teachers do? Each teacher enters once, with its row of readouts; the test
  relabels whole teachers across animals (exact when the relabellings are few).
* ``holm``: Holm's step-down adjustment over a family (``statsmodels``).

Every result reports one- and two-sided p side by side.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_LIMIT = 100_000  # enumerate every relabelling up to this many, else Monte Carlo
N_RESAMPLES = 20_000


def _nan_result(n: int) -> dict:
    return dict(
        n_units=n,
        estimate=math.nan,
        ci_lo=math.nan,
        ci_hi=math.nan,
        effect_size=math.nan,
        p_one_sided=math.nan,
        p_two_sided=math.nan,
        p_perm_one_sided=math.nan,
        p_perm_two_sided=math.nan,
        n_perm=0,
        perm_exact=False,
    )


def paired_contrast(treated, control, *, seed: int = 0) -> dict:
    """Mean of ``treated - control`` over pairs, tested against 0 (alternative: > 0)."""
    from scipy import stats

    x, y = np.asarray(treated, float), np.asarray(control, float)
    n = len(x)
    if n < 2 or len(y) != n:
        return _nan_result(n)
    d = x - y
    one = stats.ttest_rel(x, y, alternative="greater")
    two = stats.ttest_rel(x, y, alternative="two-sided")
    ci = two.confidence_interval(0.95)
    exact = 2**n <= EXACT_LIMIT
    kw = dict(
        permutation_type="samples",
        n_resamples=np.inf if exact else N_RESAMPLES,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )

    def mean_diff(a, b, axis):
        return np.mean(a - b, axis=axis)

    p1 = stats.permutation_test((x, y), mean_diff, alternative="greater", **kw)
    p2 = stats.permutation_test((x, y), mean_diff, alternative="two-sided", **kw)
    sd = d.std(ddof=1)
    return dict(
        n_units=n,
        estimate=float(d.mean()),
        ci_lo=float(ci.low),
        ci_hi=float(ci.high),
        effect_size=float(d.mean() / sd) if sd > 0 else math.copysign(math.inf, d.mean()) if d.mean() else 0.0,
        p_one_sided=float(one.pvalue),
        p_two_sided=float(two.pvalue),
        p_perm_one_sided=float(p1.pvalue),
        p_perm_two_sided=float(p2.pvalue),
        n_perm=int(2**n) if exact else N_RESAMPLES,
        perm_exact=exact,
    )


def _own_minus_other(Y: np.ndarray, labels: np.ndarray, animals: list) -> float:
    """Mean over animals a of [mean Y[own teachers of a, a] - mean Y[other teachers, a]]."""
    diffs = []
    for j, a in enumerate(animals):
        own = labels == a
        if own.any() and (~own).any():
            diffs.append(Y[own, j].mean() - Y[~own, j].mean())
    return float(np.mean(diffs)) if diffs else math.nan


def _distinct_relabellings(labels) -> list[tuple]:
    """Every distinct arrangement of ``labels`` (a multiset permutation each)."""
    import collections

    counts = collections.Counter(labels.tolist())
    keys, n, out, prefix = sorted(counts), len(labels), [], []

    def rec():
        if len(prefix) == n:
            out.append(tuple(prefix))
            return
        for k in keys:
            if counts[k]:
                counts[k] -= 1
                prefix.append(k)
                rec()
                prefix.pop()
                counts[k] += 1

    rec()
    return out


def specificity(Y, labels, animals, *, seed: int = 0) -> dict:
    """``Y[t, j]``: teacher t's readout (its students' mean) for animal ``animals[j]``;
    ``labels[t]``: teacher t's own animal. Statistic: own-minus-other, averaged over
    animals. p by relabelling whole teachers across animals (group sizes kept): exact over
    every distinct relabelling when there are at most ``EXACT_LIMIT``, else Monte Carlo.
    (``scipy.stats.permutation_test`` needs two or more units per group; one teacher per
    animal is a valid design here.)"""
    from scipy import stats

    Y, labels = np.asarray(Y, float), np.asarray(labels, dtype=object)
    animals = list(animals)
    n = len(labels)
    sizes = [int((labels == a).sum()) for a in animals]
    n_relabel = math.factorial(n) // math.prod(math.factorial(k) for k in sizes)
    if sum(k > 0 for k in sizes) < 2 or n_relabel < 20:
        return _nan_result(n)  # fewer than 20 relabellings: no p below 0.05 is attainable
    observed = _own_minus_other(Y, labels, animals)
    exact = n_relabel <= EXACT_LIMIT
    if exact:
        null = np.array([_own_minus_other(Y, np.array(lab, dtype=object), animals)
                         for lab in _distinct_relabellings(labels)])  # fmt: skip
    else:
        rng = np.random.default_rng(seed)
        null = np.array([observed] + [_own_minus_other(Y, rng.permutation(labels), animals)
                                      for _ in range(N_RESAMPLES - 1)])  # fmt: skip
    eps = 1e-12 * max(1.0, abs(observed))
    p1 = float(np.mean(null >= observed - eps))
    p2 = float(np.mean(np.abs(null - null.mean()) >= abs(observed - null.mean()) - eps))
    # per-teacher contrasts, for an approximate interval and an effect size
    s = []
    for t in range(n):
        j = animals.index(labels[t])
        others = labels != labels[t]
        if others.any():
            s.append(Y[t, j] - Y[others, j].mean())
    s = np.asarray(s)
    ci = stats.ttest_1samp(s, 0.0).confidence_interval(0.95) if len(s) > 1 else None
    sd = s.std(ddof=1) if len(s) > 1 else math.nan
    return dict(
        n_units=n,
        estimate=observed,
        ci_lo=float(ci.low) if ci else math.nan,
        ci_hi=float(ci.high) if ci else math.nan,
        effect_size=float(s.mean() / sd) if sd and sd > 0 else math.nan,
        p_one_sided=p1,
        p_two_sided=p2,
        p_perm_one_sided=p1,
        p_perm_two_sided=p2,
        n_perm=n_relabel if exact else N_RESAMPLES,
        perm_exact=exact,
    )


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (NaNs stay NaN and do not count toward the family)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def t_interval(values) -> tuple[float, float, float]:
    """Mean and t-based 95% interval over independent units."""
    from scipy import stats

    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan, math.nan
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    return float(x.mean()), float(ci.low), float(ci.high)
