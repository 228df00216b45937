"""Fit one law form to one set of points: grid of starts, robust polish, explicit status.

1. Starts: the form's grid over its nonlinear parameters, with the linearly entering ones solved
   exactly (weighted least squares) at every grid point: variable projection for the search.
   The best `FitOptions.starts` grid points are kept, best first.
2. Polish: from each start, `scipy.optimize.least_squares(method="trf", loss="huber",
   f_scale=δ)` over *all* parameters (linear ones too, since Huber has no closed form), with the
   form's bounds and its analytic Jacobian. Polishing stops once three starts agree on the
   objective (within 1e-6, relative); the lowest objective wins.
3. Status: `non_finite` (parameters or objective not finite), `not_converged` (the optimiser
   stopped on its evaluation budget), `on_bound` (a parameter sits on a finite bound: the data
   want it beyond the range the form allows, so its value is a limit, not an estimate),
   otherwise `converged`.

A warm start (bootstrap refits) skips the grid and polishes from one point.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from forgetlab.laws.forms import Design, LawForm
from forgetlab.laws.objective import DEFAULT_HUBER_DELTA, huber, log_residual_jacobian, log_residuals

STATUSES = ("converged", "on_bound", "not_converged", "non_finite")
AGREEING_COST = 1e-6  # starts whose objective is within this relative margin of the best "agree"
STOP_WHEN_AGREEING = 3  # polishing stops once this many starts agree


@dataclass(frozen=True)
class FitOptions:
    """How a single fit is done. Every field is recorded with the result."""

    huber_delta: float = DEFAULT_HUBER_DELTA
    """δ of the Huber loss on log residuals (see forgetlab.laws.objective)."""
    starts: int = 8
    """How many of the best grid points may be polished (best first; stops once 3 agree)."""
    max_nfev: int = 4000
    """Evaluation budget of one polish; running out gives status not_converged."""
    tolerance: float = 1e-12
    """ftol = xtol = gtol of least_squares (relative change of cost, step and gradient)."""
    bound_tolerance: float = 1e-6
    """A parameter closer than this (relative to max(1, |bound|)) to a finite bound is on it."""


@dataclass(frozen=True, eq=False)
class Optimum:
    """The result of one fit: parameters in the form's internal parametrisation, and how it ended."""

    theta: np.ndarray
    cost: float
    status: str
    message: str
    on_bound: tuple[str, ...] = ()
    nfev: int = 0
    starts: int = 1
    starts_agreeing: int = 1
    start_spread: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("converged", "on_bound")


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread.

    The linear algebra of a fit is tiny (11 columns); on a busy 2-core machine OpenBLAS's
    threads made each SVD 20-50x slower than one thread (measured: 10-24 ms vs 0.5 ms).
    scipy's own OpenBLAS must be loaded before it can be limited, hence the imports.
    """
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up: without it fits are slower, not different
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _inside(law: LawForm, theta: np.ndarray) -> np.ndarray:
    """Move a start strictly inside finite bounds (least_squares starts from an interior point)."""
    lower, upper = law.lower, law.upper
    width = np.where(np.isfinite(upper - lower), upper - lower, 1.0)
    margin = 1e-10 * np.maximum(width, 1.0)
    return np.clip(
        theta, lower + np.where(np.isfinite(lower), margin, 0), upper - np.where(np.isfinite(upper), margin, 0)
    )


def weighted_huber(weights: np.ndarray):
    """scipy's Huber loss (as a function of z = (r/δ)²) with a multiplicity per residual.

    A bootstrap replicate holds runs drawn several times; fitting its distinct points with
    these weights gives exactly the objective of the duplicated points at ~63% of the cost.
    """

    def loss(z: np.ndarray) -> np.ndarray:
        rho = np.empty((3, z.size))
        inside = z <= 1.0
        root = np.sqrt(np.where(inside, 1.0, z))
        rho[0] = np.where(inside, z, 2.0 * root - 1.0)
        rho[1] = np.where(inside, 1.0, 1.0 / root)
        rho[2] = np.where(inside, 0.0, -0.5 / root**3)
        return rho * weights

    return loss


def polish(
    law: LawForm, design: Design, log_y: np.ndarray, start: np.ndarray, options: FitOptions,
    weights: Optional[np.ndarray] = None,
) -> Optimum:  # fmt: skip
    """One robust least-squares run from `start`; `weights` are per-point multiplicities."""
    from scipy.optimize import least_squares

    cache: dict[str, np.ndarray] = {}

    def residuals(theta: np.ndarray) -> np.ndarray:
        prediction = law.predict(theta, design)
        cache["theta"], cache["prediction"] = theta.copy(), prediction
        r = log_residuals(prediction, log_y)
        return np.where(np.isfinite(r), r, 1e6)  # a non-finite step is rejected, not propagated

    def jacobian(theta: np.ndarray) -> np.ndarray:
        prediction = cache["prediction"] if np.array_equal(cache.get("theta"), theta) else law.predict(theta, design)
        jac = log_residual_jacobian(prediction, law.jacobian(theta, design))
        return np.where(np.isfinite(jac), jac, 0.0)

    x0 = _inside(law, np.asarray(start, dtype=float))
    per_residual = None if weights is None else np.tile(np.asarray(weights, dtype=float), len(law.targets))
    loss = "huber" if per_residual is None else weighted_huber(per_residual)
    with np.errstate(all="ignore"):
        try:
            result = least_squares(
                residuals, x0, jac=jacobian, bounds=(law.lower, law.upper), method="trf", loss=loss,
                f_scale=options.huber_delta, x_scale="jac", ftol=options.tolerance, xtol=options.tolerance,
                gtol=options.tolerance, max_nfev=options.max_nfev,
            )  # fmt: skip
        except (ValueError, np.linalg.LinAlgError) as error:
            return Optimum(x0, float("nan"), "non_finite", f"optimiser failed: {error}")
        theta = result.x
        r = log_residuals(law.predict(theta, design), log_y)
        terms = huber(r, options.huber_delta)
        cost = float(terms.sum() if per_residual is None else (terms * per_residual).sum())
    return Optimum(
        theta=theta,
        cost=cost,
        status=_status(law, theta, cost, result.status, options),
        message=str(result.message),
        on_bound=_on_bound(law, theta, options),
        nfev=int(result.nfev),
    )


def _on_bound(law: LawForm, theta: np.ndarray, options: FitOptions) -> tuple[str, ...]:
    names = []
    for spec, value in zip(law.params, theta):
        for bound in (spec.lower, spec.upper):
            if np.isfinite(bound) and abs(value - bound) <= options.bound_tolerance * max(1.0, abs(bound)):
                names.append(spec.name)
    return tuple(names)


def _status(law: LawForm, theta: np.ndarray, cost: float, optimiser_status: int, options: FitOptions) -> str:
    if not (np.all(np.isfinite(theta)) and np.isfinite(cost)):
        return "non_finite"
    if optimiser_status <= 0:
        return "not_converged"
    if _on_bound(law, theta, options):
        return "on_bound"
    return "converged"


def _best(results: list[Optimum]) -> tuple[Optional[Optimum], list[Optimum]]:
    """The lowest objective among usable results (converged or on a bound, else any finite),
    and the results agreeing with it."""
    finite = [r for r in results if np.isfinite(r.cost)]
    if not finite:
        return None, []
    usable = [r for r in finite if r.ok] or finite
    best = min(usable, key=lambda r: r.cost)
    return best, [r for r in finite if r.cost <= best.cost * (1 + AGREEING_COST) + 1e-300]


def fit(
    law: LawForm, design: Design, y: np.ndarray, options: FitOptions = FitOptions(),
    start: Optional[np.ndarray] = None, weights: Optional[np.ndarray] = None,
) -> Optimum:  # fmt: skip
    """Fit `law` to targets `y` (shape (len(law.targets), n)).

    Warm-started from `start` if given (one polish, no grid); `weights` (per-point
    multiplicities) only with a start, since the grid search does not take weights.
    """
    log_y = np.log(y)
    if start is not None:
        return polish(law, design, log_y, start, options, weights)
    if weights is not None:
        raise ValueError("weights need a warm start")
    with np.errstate(all="ignore"):
        starts = law.starts(design, y, options.huber_delta, options.starts)
    results: list[Optimum] = []
    for point in starts:
        results.append(polish(law, design, log_y, point, options))
        best, agreeing = _best(results)
        if best is not None and len(agreeing) >= STOP_WHEN_AGREEING:
            break  # starts are tried best grid point first; three that agree make a fourth unlikely to win
    best, agreeing = _best(results)
    if best is None:
        return results[0]
    spread = {
        name: float(np.ptp([r.theta[j] for r in agreeing]))
        for j, name in enumerate(law.names)
    }  # fmt: skip
    return Optimum(
        theta=best.theta, cost=best.cost, status=best.status, message=best.message, on_bound=best.on_bound,
        nfev=sum(r.nfev for r in results), starts=len(results), starts_agreeing=len(agreeing),
        start_spread=spread,
    )  # fmt: skip
