"""Can the data determine each parameter? Report it rather than present exponents as facts.

Three independent signs that parameters trade off (a change in one is compensated by others,
leaving the predictions almost unchanged):

1. The Jacobian of the log residuals at the optimum, each column scaled to unit norm: its
   condition number above CONDITION_LIMIT means some combination of parameters barely moves
   any prediction; the right singular vector of the smallest singular value names it.
2. The bootstrap: a parameter whose percentile interval is wider than its own magnitude, or
   reaches one of its bounds, is `weak`; pairs whose draws correlate beyond CORRELATION_LIMIT
   with a weak member are reported as trading off.
3. The starts: polished starts that end with the same objective (within 1e-6) but different
   parameters (relative spread above START_SPREAD_LIMIT) mean a flat valley, not a point.

`identified` is true only when none of the three fires. Exact symmetries of a form (the gauges of
paper-joint) are not failures of the data and are reported separately as `gauge`. A design with one
run per rank has no bootstrap: its parameters can still be determined by its points (a line
through one run's points with R² 0.99 is), judged by signs 1 and 3 alone; what it cannot give is
any interval across runs or seeds, reported as `unknown`, not as a failure to identify.
Predictions stay trustworthy when parameters are weak; judge a law by its held-out error.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from forgetlab.laws.fitting import Optimum
from forgetlab.laws.forms import Design, LawForm
from forgetlab.laws.objective import log_residual_jacobian

CONDITION_LIMIT = 1e6
CORRELATION_LIMIT = 0.99
START_SPREAD_LIMIT = 1e-3
DIRECTION_SHARE = 0.3  # parameters with |component| above this are named in the weakest direction


def jacobian_condition(law: LawForm, theta: np.ndarray, design: Design) -> tuple[float, dict[str, float]]:
    """Condition number of the column-normalised Jacobian and its weakest direction."""
    prediction = law.predict(theta, design)
    jac = log_residual_jacobian(prediction, law.jacobian(theta, design))
    norms = np.linalg.norm(jac, axis=0)
    if np.any(~np.isfinite(norms)) or np.any(norms == 0):
        dead = [n for n, v in zip(law.names, norms) if not np.isfinite(v) or v == 0]
        return float("inf"), {name: 1.0 for name in dead}
    _, singular, vt = np.linalg.svd(jac / norms, full_matrices=False)
    condition = float(singular[0] / singular[-1]) if singular[-1] > 0 else float("inf")
    weakest = {name: round(float(v), 3) for name, v in zip(law.names, vt[-1]) if abs(v) > DIRECTION_SHARE}
    return condition, weakest


def assess(
    law: LawForm,
    optimum: Optimum,
    design: Design,
    draws: np.ndarray,
    internal_low: np.ndarray,
    internal_high: np.ndarray,
    public: dict[str, float],
    public_intervals: dict[str, tuple[Optional[float], Optional[float]]],
    withheld: Optional[str] = None,
    unreplicated: bool = False,
) -> dict[str, Any]:
    """Every sign of parameters the data do not determine (see the module docstring).

    `unreplicated`: `withheld` says the design has a single run at some rank (no bootstrap is
    possible), which leaves the uncertainty unknown but the parameters' determination by these
    points to the Jacobian and the starts.
    """
    condition, weakest = jacobian_condition(law, optimum.theta, design)
    weak = _weak_public(public, public_intervals, draws.shape[0] > 0)
    at_bound, internal_weak = _weak_internal(law, optimum.theta, internal_low, internal_high)
    trading = _trading_off(law, draws, internal_weak)
    spread = {
        name: value for name, value, estimate in zip(law.names, (optimum.start_spread.get(n, 0.0) for n in law.names), optimum.theta)
        if value > START_SPREAD_LIMIT * max(abs(estimate), 1e-12)
    }  # fmt: skip
    reasons = []
    if withheld and not unreplicated:
        reasons.append(f"the uncertainty is unknown: {withheld}")
    elif draws.shape[0] == 0 and not unreplicated:
        reasons.append("no bootstrap refit succeeded, so the uncertainty is unknown")
    if condition > CONDITION_LIMIT:
        reasons.append(f"near-singular Jacobian (condition {condition:.3g}; {', '.join(weakest)} trade off)")
    if weak or internal_weak:
        reasons.append(f"wide bootstrap intervals for {', '.join(sorted(set(weak) | internal_weak))}")
    if spread:
        reasons.append(f"starts reach the same objective with different {', '.join(spread)}")
    if reasons:
        note = "; ".join(reasons)
    elif unreplicated:
        note = (
            "every parameter is determined by these points (well-conditioned Jacobian, starts agree); "
            "how they vary across runs or seeds is unknown (no interval)"
        )
    else:
        note = "every parameter is determined by the data"
    return {
        "identified": not reasons,
        "note": note,
        "unknown": withheld if unreplicated else None,
        "condition_number": condition,
        "weakest_direction": weakest,
        "weak_parameters": sorted(weak),
        "weak_internal": sorted(internal_weak),
        "intervals_at_bound": sorted(set(at_bound)),
        "trading_off": trading,
        "start_disagreement": spread,
        "gauge": law.gauge_note,
    }


def _weak_public(public: dict[str, float], intervals: dict, have_draws: bool) -> list[str]:
    """Public parameters whose interval is missing (with draws) or wider than their magnitude."""
    weak = []
    for name, estimate in public.items():
        low, high = intervals.get(name, (None, None))
        if low is None or high is None or not np.isfinite(low) or not np.isfinite(high):
            if have_draws:
                weak.append(name)
            continue
        if high - low > abs(estimate):
            weak.append(name)
    return weak


def _weak_internal(law: LawForm, theta: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[list[str], set[str]]:
    """Internal parameters whose interval reaches a bound, and those weak by width or bound."""
    at_bound = []
    for spec, lo, hi in zip(law.params, low, high):
        for bound in (spec.lower, spec.upper):
            if (
                np.isfinite(bound)
                and np.isfinite(lo)
                and (np.isclose(lo, bound, atol=1e-9) or np.isclose(hi, bound, atol=1e-9))
            ):
                at_bound.append(spec.name)
    weak = set(at_bound)
    for spec, lo, hi, estimate in zip(law.params, low, high, theta):
        if np.isfinite(lo) and np.isfinite(hi) and hi - lo > abs(estimate):
            weak.add(spec.name)
    return at_bound, weak


def _trading_off(law: LawForm, draws: np.ndarray, weak: set[str]) -> list:
    """Pairs whose draws correlate beyond CORRELATION_LIMIT with a weak member."""
    if draws.shape[0] <= 2:
        return []
    with np.errstate(all="ignore"):
        correlation = np.corrcoef(draws.T)
    names, trading = law.names, []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            r = correlation[i, j]
            if np.isfinite(r) and abs(r) > CORRELATION_LIMIT and (names[i] in weak or names[j] in weak):
                trading.append([names[i], names[j], round(float(r), 4)])
    return trading
