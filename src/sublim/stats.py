"""Statistics for the trait readouts: bootstrap CIs, a stratified permutation test, Welch.

The permutation test compares treatment with control values while permuting labels only
within strata (the target animal), so animals with different base rates never mix. It is
exact (full enumeration) when the number of relabellings is small, Monte Carlo otherwise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan, math.nan)
    if len(x) == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return (float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)))


def hedges_g(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return math.nan
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if sp == 0:
        return math.inf if a.mean() != b.mean() else 0.0
    return float((a.mean() - b.mean()) / sp * (1 - 3 / (4 * (na + nb) - 9)))


def welch(a, b) -> tuple[float, float]:
    """Welch's t statistic and one-sided p-value for mean(a) > mean(b)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def stratified_permutation(
    values, treated, strata, *, n_perm: int = 20000, seed: int = 0, max_exact: int = 200_000
) -> dict:
    """Test mean(treated) - mean(control) > 0 with labels permuted within each stratum.

    Returns the observed difference and one- and two-sided p-values (with the observed
    relabelling counted, so p is never 0).
    """
    v = np.asarray(values, float)
    t = np.asarray(treated, bool)
    s = np.asarray(strata)
    groups = []
    for key in sorted(set(s.tolist())):
        idx = np.flatnonzero(s == key)
        k = int(t[idx].sum())
        if 0 < k < len(idx):
            groups.append((idx, k))
    if not groups:
        return {
            "diff": math.nan,
            "p_one_sided": math.nan,
            "p_two_sided": math.nan,
            "n_perm": 0,
            "exact": False,
        }
    use = np.concatenate([g[0] for g in groups])

    def diff(mask) -> float:
        return float(v[use][mask[use]].mean() - v[use][~mask[use]].mean())

    observed = diff(t)
    n_total = math.prod(math.comb(len(idx), k) for idx, k in groups)
    stats_ = []
    if n_total <= max_exact:
        per_group = [list(itertools.combinations(idx.tolist(), k)) for idx, k in groups]
        for choice in itertools.product(*per_group):
            m = np.zeros(len(v), bool)
            for c in choice:
                m[list(c)] = True
            stats_.append(diff(m))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        stats_.append(observed)
        for _ in range(n_perm - 1):
            m = np.zeros(len(v), bool)
            for idx, k in groups:
                m[rng.choice(idx, size=k, replace=False)] = True
            stats_.append(diff(m))
        exact = False
    arr = np.asarray(stats_)
    eps = 1e-12 * max(1.0, abs(observed))
    return {
        "diff": observed,
        "p_one_sided": float(np.mean(arr >= observed - eps)),
        "p_two_sided": float(np.mean(np.abs(arr) >= abs(observed) - eps)),
        "n_perm": len(arr),
        "exact": exact,
    }
