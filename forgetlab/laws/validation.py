"""Held-out prediction error: how well a law predicts runs it was not fitted on.

Three splits. Two by rank (all points of a rank are held out together, since a law in P is
meant to predict new P):
  * leave-one-rank-out: for each rank, fit on the other ranks, predict it;
  * small-to-largest: fit on every rank but the largest, predict the largest (the extrapolation
    a scaling law is for).
One in N, which tests what a form assumes about long training (saturation or not):
  * later steps: fit the points with N up to the median of the distinct N (the first half of the
    steps), predict the points beyond it.
Each fold is a full fit from the grid of starts (not warm-started from the full-data optimum,
which has seen the held-out points). Errors are in nats; a fold whose training points cannot
identify the law is reported as skipped, with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetlab.laws.fitting import FitOptions, fit
from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.goodness import errors
from forgetlab.laws.points import Points, unfittable


def held_out(
    law: LawForm, points: Points, reference: Reference, options: FitOptions, test: np.ndarray
) -> dict[str, Any]:
    """Fit on ~test, predict test: errors per target, or the reason the fold was skipped."""
    train_points, test_points = points.take(~test), points.take(test)
    reason = unfittable(law, train_points)
    if reason:
        return {"skipped": reason}
    train = Design.build(train_points.P, train_points.N, train_points.L_ft, reference)
    optimum = fit(law, train, train_points.targets(law), options)
    if not np.all(np.isfinite(optimum.theta)):
        return {"skipped": f"fit {optimum.status}"}
    design = Design.build(test_points.P, test_points.N, test_points.L_ft, reference)
    prediction = law.predict(optimum.theta, design)
    observed = test_points.targets(law)
    return {
        "status": optimum.status,
        **{target: errors(prediction[row], observed[row]) for row, target in enumerate(law.targets)},
    }


def _pooled(folds: dict[str, dict[str, Any]], targets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """RMSE/MAE over all held-out points of all folds that ran."""
    pooled = {}
    for target in targets:
        done = [f[target] for f in folds.values() if target in f]
        n = sum(d["n"] for d in done)
        if n == 0:
            continue
        pooled[target] = {
            "n": n,
            "rmse": float(np.sqrt(sum(d["rmse"] ** 2 * d["n"] for d in done) / n)),
            "mae": float(sum(d["mae"] * d["n"] for d in done) / n),
        }
    return pooled


def validate(law: LawForm, points: Points, reference: Reference, options: FitOptions) -> dict[str, Any]:
    """Every split that applies to these points (a single rank: the split in N only)."""
    ranks = np.unique(points.rank)
    if len(ranks) < 2:
        return {
            "skipped": "a single rank: nothing to hold out",
            "later_steps": later_steps(law, points, reference, options),
        }
    folds = {_label(r): held_out(law, points, reference, options, points.rank == r) for r in ranks}
    largest = ranks.max()
    return {
        "leave_one_rank_out": {"folds": folds, **_pooled(folds, law.targets)},
        # fitting on every rank but the largest is that rank's leave-one-out fold: reuse it
        "small_to_largest": {"held_out_rank": _label(largest), **folds[_label(largest)]},
        "later_steps": later_steps(law, points, reference, options),
    }


def later_steps(law: LawForm, points: Points, reference: Reference, options: FitOptions) -> dict[str, Any]:
    """Fit N ≤ the median distinct N, predict the later points: does the form extrapolate in N?"""
    steps = np.unique(points.N)
    if len(steps) < 2 or not np.all(np.isfinite(steps)):
        return {"skipped": "fewer than two distinct N: nothing later to predict"}
    cut = float(np.median(steps))
    return {"fitted_up_to_N": cut, **held_out(law, points, reference, options, points.N > cut)}


def _label(rank: float) -> str:
    return str(int(rank)) if float(rank).is_integer() else f"{rank:g}"
