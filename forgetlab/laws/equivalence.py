"""What an interval rules out: an interval that contains 0 is not evidence of 0.

A 95% interval [low, high] around 0 says the effect is smaller than max(|low|, |high|) in
magnitude, at that confidence (the two one-sided tests of an equivalence test, each at 2.5%):
that bound, not "no effect", is what the data show. For a term in a logarithm (the rank term
d·ln(P/P0), the steps term e·ln(N/N0)) the bound becomes an offset in nats over the measured range:
|d| < X means that at equal L_ft the runs of the largest and smallest rank differ by less than
X·ln(P_max/P_min) nats.
"""

from __future__ import annotations

import math
from typing import Optional

from forgetlab.laws.text import fixed


def excluded(low: Optional[float], high: Optional[float]) -> Optional[float]:
    """Where [low, high] contains 0: the bound max(|low|, |high|) on the effect's size; else None."""
    if low is None or high is None or low != low or high != high or not low <= 0 <= high:
        return None
    return max(abs(low), abs(high))


def verdict(name: str, low: Optional[float], high: Optional[float], decimals: int = 3) -> str:
    """'|d| < 0.016' where the interval contains 0, 'd > 0.049' or 'd < −0.032' where it excludes it."""
    if low is None or high is None or low != low or high != high:
        return "no interval"
    bound = excluded(low, high)
    if bound is not None:
        return f"|{name}| < {fixed(bound, decimals)}"
    return f"{name} > {fixed(low, decimals)}" if low > 0 else f"{name} < {fixed(high, decimals)}"


def offset_over(low: Optional[float], high: Optional[float], span: float) -> Optional[tuple[float, float]]:
    """A log term's interval as an offset in nats over a range whose log-width is `span`
    (ln(P_max/P_min)): (0, bound·span) style bounds where it contains 0, else (low·span, high·span)."""
    if low is None or high is None or low != low or high != high or not math.isfinite(span):
        return None
    bound = excluded(low, high)
    if bound is not None:
        return (-bound * span, bound * span)
    return (low * span, high * span)
