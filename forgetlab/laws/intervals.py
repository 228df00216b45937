"""Percentile intervals: the one helper every interval of the laws goes through.

An interval is the (1−level)/2 and (1+level)/2 percentiles of the finite values of the draws
(bootstrap parameters, predictions, differences). Too few draws give no interval (None/NaN),
never a zero-width one.
"""

from __future__ import annotations

import numpy as np

MIN_DRAWS = 2  # a percentile interval of one draw has zero width and says nothing


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """(low, high) of the finite values; (nan, nan) with fewer than MIN_DRAWS of them."""
    values = np.asarray(values, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size < MIN_DRAWS:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def percentile_intervals(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a (draws, k) matrix: `percentile_interval` of that column."""
    values = np.asarray(values, dtype=float)
    k = values.shape[1] if values.ndim == 2 else 0
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    for j in range(k):
        low[j], high[j] = percentile_interval(values[:, j], level)
    return low, high


def as_list(interval: tuple[float, float]) -> list:
    """[low, high] with None for a missing bound (JSON has no NaN)."""
    return [None if v != v else v for v in interval]
