"""Bootstrap by design: parameter uncertainty from resampling the study's independent units.

Points of one run are one curve and correlated, and runs of one seed share a data order, so the
unit resampled is never a point: it is chosen from the design by `resampling.py` — whole seeds
(every rank of a seed together) where seeds are crossed with ranks, the default wherever points
carry a seed; seeds or runs within their rank where they are not. Each replicate draws n − 1 of
n units with replacement (Rao & Wu 1988). A design without replication (one seed; one run per
rank) gives no interval, and the fit says why (`design_problem`).

Intervals (`intervals.py`) are estimate ± t·sd of the successful draws, t on the design's
degrees of freedom (seeds − 1 for whole seeds; Σ over ranks of units − 1 within ranks).

Each replicate is refitted warm-started from the full-data optimum with the multiplicities of
its drawn points as weights; a warm refit that fails is retried once from the grid. Replicates
that cannot identify the law and refits that still fail are counted by reason. The random
stream is numpy's `default_rng(seed)`, or `default_rng([seed, crc32(stream)])` for a named
stream: `fit --by` gives each group its own stream unless the groups are paired by design (see
`compare.py`).
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from forgetlab.laws.fitting import FitOptions, fit
from forgetlab.laws.forms import Design, LawForm
from forgetlab.laws.resampling import AUTO, Frame, resampling_frame


@dataclass(frozen=True)
class BootstrapOptions:
    """How parameter uncertainty is estimated. Every field is recorded with the result."""

    B: int = 1000
    """Number of bootstrap replicates (the seed jackknife, the default for crossed seeds, refits once per seed instead)."""
    seed: int = 0
    """Seed of numpy's default_rng that draws the replicates."""
    level: float = 0.95
    """Coverage of the percentile intervals."""
    stream: Optional[str] = None
    """A name giving this fit its own random stream (default_rng([seed, crc32(name)])); None: default_rng(seed)."""
    min_success: float = 0.8
    """Intervals are withheld when fewer than this share of the B refits succeed (the rest are not a random loss)."""
    unit: str = AUTO
    """What is resampled (`resampling.py`): auto (the default: whole seeds, each left out in turn, where
    seeds are crossed with ranks; else seeds or runs within ranks), seed, seed bootstrap or within rank
    (forced: the coverage simulation compares them)."""
    refit_tolerance: float = 1e-12
    """ftol = xtol = gtol of a replicate's refit: the main fit's. At 1e-10 the warm refits of a Huber
    fit (near-L1 when residuals exceed δ) stopped early near the start, and the spread of c came out
    3–6% narrow against refits from the grid (three simulated studies, 100 replicates each)."""
    refit_max_nfev: int = 1000
    """Evaluation budget of a replicate's warm refit."""

    def rng(self) -> np.random.Generator:
        if self.stream is None:
            return np.random.default_rng(self.seed)
        return np.random.default_rng([self.seed, zlib.crc32(self.stream.encode())])


def sampling_frame(rank: np.ndarray, run_id: np.ndarray, seed: Optional[np.ndarray] = None, unit: str = AUTO) -> Frame:
    """The units of these points (`resampling.resampling_frame`)."""
    return resampling_frame(rank, run_id, seed, unit)


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Successful replicates' parameters (internal parametrisation) and what happened to the rest."""

    draws: np.ndarray
    requested: int
    failed: dict[str, int] = field(default_factory=dict)
    on_bound: int = 0
    retried: int = 0
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))
    """The replicate number of each draw (paired comparisons match draws by it)."""
    not_attempted: Optional[str] = None
    """Why no replicate was drawn (the design cannot give an interval, or the main fit failed)."""
    df: Optional[int] = None
    """Degrees of freedom of the design (`Frame.df`): the t quantile of the intervals."""
    unit: Optional[str] = None
    """What was resampled (`Frame.unit`: seed, seed within rank, run within rank)."""
    units: Optional[int] = None
    """How many of them."""
    scheme: Optional[str] = None
    summary: Optional[str] = None
    """One line for the terminal and the report: the unit, how many, the df."""
    caution: Optional[str] = None
    """Why the interval deserves less trust than its level says (two seeds), or None."""
    complete: bool = False
    """Every replicate must succeed (the seed jackknife: a seed whose refit failed cannot be left out)."""

    @property
    def n_ok(self) -> int:
        return int(self.draws.shape[0])

    @property
    def n_failed(self) -> int:
        return int(sum(self.failed.values()))


def bootstrap(
    law: LawForm,
    design: Design,
    y: np.ndarray,
    frame: Frame,
    theta_hat: np.ndarray,
    fit_options: FitOptions,
    options: BootstrapOptions,
    problem: Callable[[np.ndarray], Optional[str]],
) -> BootstrapResult:
    """Refit `law` on the replicates of `frame` (`options.B` random ones for a bootstrap, one per
    seed left out for the seed jackknife, whose refits come back as pseudo-draws: `Frame.combine`).

    `problem(index)` says why a replicate cannot identify the law (None if it can); such
    replicates are counted under that reason and not fitted.
    """
    rng = options.rng()
    warm = replace(fit_options, tolerance=options.refit_tolerance, max_nfev=options.refit_max_nfev)
    draws, replicates, failed, on_bound, retried = [], [], Counter(), 0, 0
    warm_start = bool(np.all(np.isfinite(theta_hat)))  # a non-finite optimum is no place to start from
    for replicate, index in enumerate(frame.replicates(rng, options.B)):
        reason = problem(index)
        if reason is not None:
            failed[reason.split(";")[0]] += 1  # the reason without its advice, as a short key
            continue
        result, from_grid = _refit(law, design, y, index, theta_hat if warm_start else None, warm, fit_options)
        retried += from_grid
        if not result.ok:
            failed[result.status] += 1
            continue
        on_bound += result.status == "on_bound"
        draws.append(result.theta)
        replicates.append(replicate)
    requested = frame.requested(options.B)
    matrix = np.array(draws) if draws else np.empty((0, len(law.params)))
    if frame.complete and len(draws) == requested and warm_start:
        matrix = frame.combine(matrix, theta_hat)
    replicate_numbers = np.array(replicates, dtype=int)
    return BootstrapResult(matrix, requested, dict(failed), on_bound, retried, replicate_numbers, complete=frame.complete,
                           **describe_frame(frame))  # fmt: skip


def describe_frame(frame: Optional[Frame]) -> dict:
    """The BootstrapResult fields that say what was resampled."""
    if frame is None:
        return {}
    return {"df": frame.df, "unit": frame.unit, "units": frame.units, "scheme": frame.scheme,
            "summary": frame.summary(), "caution": frame.caution()}  # fmt: skip


def _refit(law, design, y, index, start, warm: FitOptions, cold: FitOptions):
    """Warm refit on the distinct points with multiplicities; from the grid if that fails."""
    if start is not None:
        distinct, counts = np.unique(index, return_counts=True)
        result = fit(law, design.take(distinct), y[:, distinct], warm, start=start, weights=counts)
        if result.ok:
            return result, False
    return fit(law, design.take(index), y[:, index], cold), True


def not_attempted(
    law: LawForm, options: BootstrapOptions, reason: str, frame: Optional[Frame] = None
) -> BootstrapResult:
    described = {k: v for k, v in describe_frame(frame).items() if k != "caution"}
    return BootstrapResult(np.empty((0, len(law.params))), options.B, {}, not_attempted=reason, **described)


def withheld(result: BootstrapResult, options: BootstrapOptions) -> Optional[str]:
    """Why the intervals must not be shown, or None."""
    if result.not_attempted:
        return result.not_attempted
    if result.complete and result.n_ok < result.requested:
        return (
            f"{result.n_ok} of {result.requested} refits with a seed left out succeeded: the jackknife needs every one, "
            "so the intervals are withheld"
        )
    if result.n_ok < 2:
        return f"{result.n_ok} of {result.requested} bootstrap refits succeeded: too few for an interval"
    if result.n_ok < options.min_success * result.requested:
        return (
            f"only {result.n_ok} of {result.requested} bootstrap refits succeeded (< {options.min_success:.0%}); the "
            "failures are not a random loss, so the intervals are withheld"
        )
    return None
