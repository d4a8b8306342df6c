"""Percentile bootstrap over items, vectorised: one (n_boot, n) index matrix, one statistic call.

Every CI in `harness.evaluation` is a percentile bootstrap: resample the items (pairs) with
replacement `n_boot` times, recompute the statistic, and report the (1-ci)/2 and (1+ci)/2
quantiles. Items, not labels, are resampled, so the two orders of one pair stay together.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_N_BOOT = 1000


def resample_indices(n: int, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n) matrix of item indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def bootstrap_ci(stat: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int = DEFAULT_N_BOOT,
                 seed: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """CI of `stat(idx)`, where `stat` maps an (n_boot, n) index matrix to n_boot values."""
    if n == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    return percentile_ci(stat(resample_indices(n, n_boot, seed)), ci)


def bootstrap_mean_ci(values, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """CI of the mean of `values` (NaNs are not allowed: drop them first)."""
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(lambda idx: v[idx].mean(axis=1), len(v), n_boot, seed, ci)


def bootstrap_ratio_ci(num, den, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """CI of sum(num)/sum(den) over items, e.g. accuracy over the items that have a label."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)

    def stat(idx):
        d = b[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, a[idx].sum(axis=1) / np.where(d > 0, d, 1), np.nan)

    return bootstrap_ci(stat, len(a), n_boot, seed, ci)
