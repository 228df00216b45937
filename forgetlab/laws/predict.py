"""Predictions from a stored fit, with intervals from its bootstrap draws.

The interval of a prediction is the percentile interval, at the fit's level, of the predictions
of every successful bootstrap replicate's parameters: it carries the parameters' uncertainty
and their trade-offs (weak parameters that trade off still give tight predictions).

Predictions far outside the fitted range are refused unless asked for: a law in P and N is a
description of the range it was fitted on. The limit is a factor EXTRAPOLATION_FACTOR beyond
the fitted P and N in either direction (for the linear law: L_ft more than one fitted range
width outside the fitted L_ft). Inside that limit but outside the fitted range, a prediction is
made and said to be an extrapolation (`range_notes`). Inputs a law does not use are named and
left out (`unused_inputs`), never shown as if they had shaped the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from forgetlab.errors import UserError
from forgetlab.laws.forms import Design, LawForm, Reference, get_law
from forgetlab.laws.intervals import bootstrap_interval
from forgetlab.laws.result import FitResult

EXTRAPOLATION_FACTOR = 10.0
SEARCH_POINTS = 2000  # log-spaced N at which the crossing of a forgetting threshold is located


@dataclass(frozen=True, eq=False)
class StoredLaw:
    """A fit made usable: the form, its reference point, estimate and draws."""

    result: FitResult
    law: LawForm
    reference: Reference
    estimate: np.ndarray
    draws: np.ndarray

    @classmethod
    def of(cls, result: FitResult) -> "StoredLaw":
        draws = np.array(result.internal.get("draws") or [], dtype=float).reshape(-1, len(result.internal["names"]))
        return cls(
            result, get_law(result.law), Reference(result.reference["P0"], result.reference["N0"]),
            np.array(result.internal["estimate"], dtype=float), draws,
        )  # fmt: skip

    @property
    def level(self) -> float:
        return float(self.result.bootstrap["level"])

    @property
    def df(self):
        """The design's degrees of freedom (None for fits stored before it was recorded: normal quantile)."""
        return self.result.bootstrap.get("df")


def resolve_P(result: FitResult, rank: Optional[float], P: Optional[float]) -> float:
    """P from --P, or from --rank: the P the data had at that rank, else rank × (P/rank)."""
    if (rank is None) == (P is None):
        raise UserError("give exactly one of --rank and --P")
    if P is not None:
        if P <= 0:
            raise UserError(f"--P {P:g}: P must be positive")
        return float(P)
    if rank <= 0:
        raise UserError(f"--rank {rank:g}: the rank must be positive")
    per_rank = result.data.get("P_per_rank") or {}
    if per_rank.get(f"{rank:g}") is not None:
        return float(per_rank[f"{rank:g}"])
    ratio = result.data.get("P_over_rank")
    if ratio is None:
        raise UserError(
            f"P is not proportional to rank in the fitted data and rank {rank:g} was not fitted; pass --P instead"
        )
    return float(ratio) * float(rank)


def unused_inputs(
    law: LawForm, rank: Optional[float], P: Optional[float], N: Optional[float], L_ft: Optional[float]
) -> list[str]:
    """The options given that `law` does not use (the linear law predicts from L_ft alone)."""
    given = {"--rank": rank, "--P": P} if not law.uses_P() else {}
    if not law.uses_N():
        given["--steps"] = N
    if "L_ft" not in law.inputs:
        given["--ft-loss"] = L_ft
    return [option for option, value in given.items() if value is not None]


def inputs_text(law: LawForm) -> str:
    """'L_ft', 'P and N', 'L_ft, P and N'."""
    names = list(law.inputs)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def range_notes(
    result: FitResult, rank: Optional[float], P: Optional[float], N: Optional[float], L_ft: Optional[float]
) -> list[str]:
    """One line per input outside the range the fit saw (an extrapolation), e.g. a rank above the largest fitted."""
    data, notes = result.data, []
    ranks = [float(r) for r in (data.get("P_per_rank") or {})]
    for name, value in (("P", P), ("N", N), ("L_ft", L_ft)):
        if value is None or f"{name}_range" not in data:
            continue
        low, high = data[f"{name}_range"]
        if low <= value <= high:
            continue
        what = f"{name}={value:g}"
        fitted = f"the fitted {low:g}..{high:g}"
        if name == "P" and rank is not None and ranks:
            what = f"rank {rank:g} (P={value:.4g})"
            fitted = f"the fitted ranks {', '.join(f'{r:g}' for r in sorted(ranks))} (P {low:.4g}..{high:.4g})"
        if name == "L_ft":
            side = "below" if value < low else "above"
        else:
            side = f"{value / high:.3g}x above" if value > high else f"{low / value:.3g}x below"
        notes.append(f"{what} is {side} {fitted}: an extrapolation, where the law is not known to hold")
    return notes


def check_range(
    result: FitResult, P: Optional[float], N: Optional[float], L_ft: Optional[float], extrapolate: bool
) -> None:
    """Refuse, in one line, a prediction far outside what was fitted (unless --extrapolate)."""
    if extrapolate:
        return
    data = result.data
    for name, value in (("P", P), ("N", N)):
        if value is None or f"{name}_range" not in data:
            continue
        low, high = data[f"{name}_range"]
        if value > high * EXTRAPOLATION_FACTOR or value < low / EXTRAPOLATION_FACTOR:
            raise UserError(
                f"{name}={value:g} is more than {EXTRAPOLATION_FACTOR:g}x outside the fitted range "
                f"{low:g}..{high:g}; the law is not known to hold there (pass --extrapolate to predict anyway)"
            )
    if L_ft is not None and "L_ft_range" in data:
        low, high = data["L_ft_range"]
        width = high - low
        if L_ft < low - width or L_ft > high + width:
            raise UserError(
                f"L_ft={L_ft:g} is far outside the fitted range {low:g}..{high:g}; pass --extrapolate to predict anyway"
            )


def predict(
    stored: StoredLaw, P: Optional[float] = None, N: Optional[float] = None, L_ft: Optional[float] = None
) -> dict[str, dict[str, float]]:
    """Each target's prediction at one point: estimate and interval."""
    require_inputs(stored, P, N, L_ft)
    law = stored.law
    design = Design.build(
        np.array([P if P is not None and law.uses_P() else np.nan]), np.array([N if N is not None and law.uses_N() else np.nan]),
        None if L_ft is None or "L_ft" not in law.inputs else np.array([L_ft]), stored.reference,
    )  # fmt: skip
    estimate = law.predict(stored.estimate, design)[:, 0]
    draws = np.array([law.predict(d, design)[:, 0] for d in stored.draws]).reshape(-1, len(law.targets))
    out = {}
    for row, target in enumerate(law.targets):
        low, high = bootstrap_interval(estimate[row], draws[:, row], stored.level, stored.df)
        out[target] = {"estimate": float(estimate[row]), "low": low, "high": high}
    return out


def require_inputs(stored: StoredLaw, P: Optional[float], N: Optional[float], L_ft: Optional[float]) -> None:
    """Refuse, in one line, a prediction missing an input the law needs."""
    law = stored.law
    fit = f"fit {stored.result.fit_id} is law {law.name}, which" if stored.result.fit_id else f"law {law.name}"
    if "L_ft" in law.inputs and L_ft is None:
        raise UserError(
            f"{fit} predicts L_f from {inputs_text(law)}: pass --ft-loss L_FT (the fine-tuning loss you expect); "
            "to predict from --rank and --steps alone use a law in P and N, e.g. --fit paper-joint (its latest fit)"
        )
    if law.uses_P() and P is None:
        raise UserError(f"{fit} predicts from {inputs_text(law)}: pass --rank or --P")
    if law.uses_N() and N is None:
        raise UserError(f"{fit} predicts from {inputs_text(law)}: pass --steps")


def steps_to_forgetting(stored: StoredLaw, P: float, threshold: float, extrapolate: bool) -> dict[str, Any]:
    """How many steps at this P before L_f first exceeds `threshold`.

    Searched on SEARCH_POINTS log-spaced N over the allowed range (the fitted N range widened by
    EXTRAPOLATION_FACTOR, or 1..1e9 with --extrapolate), interpolated linearly in ln N between
    the bracketing grid points; the same for every bootstrap draw, which gives the interval.
    """
    law = stored.law
    if not (law.uses_P() and law.uses_N()) or "L_ft" in law.inputs:
        raise UserError(
            f"law {law.name} is not a law in P and N alone: --max-forgetting needs one (paper-joint, power-additive, log-steps, power-steps)"
        )
    low, high = stored.result.data["N_range"]
    span = (1.0, 1e9) if extrapolate else (low / EXTRAPOLATION_FACTOR, high * EXTRAPOLATION_FACTOR)
    grid = np.geomspace(*span, SEARCH_POINTS)
    design = Design.build(np.full(grid.shape, P), grid, None, stored.reference)
    row = law.targets.index("L_f")

    def crossing(theta: np.ndarray) -> float:
        curve = law.predict(theta, design)[row]
        above = np.flatnonzero(curve > threshold)
        if above.size == 0:
            return float("inf")  # never within the range
        k = above[0]
        if k == 0:
            return float(grid[0])  # already past at the start of the range
        x0, x1, y0, y1 = np.log(grid[k - 1]), np.log(grid[k]), curve[k - 1], curve[k]
        return float(np.exp(x0 + (threshold - y0) * (x1 - x0) / (y1 - y0)))

    estimate = crossing(stored.estimate)
    per_draw = np.array([crossing(d) for d in stored.draws])
    finite = per_draw[np.isfinite(per_draw)]
    # steps are positive and spread multiplicatively: the interval is taken on ln N
    log_low, log_high = bootstrap_interval(np.log(estimate), np.log(finite), stored.level, stored.df)
    interval = (float(np.exp(log_low)), float(np.exp(log_high)))
    return {
        "threshold": threshold,
        "P": P,
        "steps": estimate,
        "low": interval[0],
        "high": interval[1],
        "searched": [float(span[0]), float(span[1])],
        "draws_never_crossing": int(np.sum(~np.isfinite(per_draw))),
        "draws": int(per_draw.size),
        "already_past": bool(np.isfinite(estimate) and estimate <= span[0]),
        "fitted_L_f_range": stored.result.data.get("L_f_range"),
    }


def linear_threshold(stored: StoredLaw, threshold: float) -> dict[str, Any]:
    """For the linear law: the L_ft below which forgetting exceeds `threshold`."""
    if stored.law.name != "linear":
        raise UserError(
            f"--max-forgetting with law {stored.law.name}: use a linear fit (L_f from L_ft) or a law in P and N"
        )

    def solve(theta: np.ndarray) -> float:
        c, s = theta
        return (s - threshold) / c if c != 0 else float("nan")

    values = np.array([solve(d) for d in stored.draws])
    low, high = bootstrap_interval(solve(stored.estimate), values, stored.level, stored.df)
    return {"threshold": threshold, "L_ft": solve(stored.estimate), "low": low, "high": high}
