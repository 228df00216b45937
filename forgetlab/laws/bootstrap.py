"""Bootstrap over runs: parameter uncertainty that respects how the points were produced.

The points of one run are a curve: consecutive evaluations of the same model, correlated with
each other. Resampling points would treat them as independent and give intervals far too narrow.
The unit resampled is therefore the run (`run_id`): each replicate draws as many runs as the data
has, with replacement, and keeps all points of every drawn run (a run drawn twice counts twice).

Each replicate is refitted warm-started from the full-data optimum (the optimum is near, and a
grid search per replicate would cost ~20× more); a warm refit that fails is retried once from the
grid. Replicates whose runs cannot identify the law (e.g. fewer than 3 distinct P) and refits
that still fail are counted by reason, never silently dropped. Intervals are percentile
intervals of the successful refits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from forgetlab.laws.fitting import FitOptions, fit
from forgetlab.laws.forms import Design, LawForm


@dataclass(frozen=True)
class BootstrapOptions:
    """How parameter uncertainty is estimated. Every field is recorded with the result."""

    B: int = 1000
    """Number of bootstrap replicates."""
    seed: int = 0
    """Seed of numpy's default_rng that draws the replicates."""
    level: float = 0.95
    """Coverage of the percentile intervals."""
    unit: str = "run_id"
    """The column whose values are resampled as wholes."""
    refit_tolerance: float = 1e-10
    """ftol = xtol = gtol of a replicate's refit (looser than the main fit's 1e-12)."""
    refit_max_nfev: int = 1000
    """Evaluation budget of a replicate's warm refit."""


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Successful replicates' parameters (internal parametrisation) and what happened to the rest."""

    draws: np.ndarray
    requested: int
    failed: dict[str, int] = field(default_factory=dict)
    on_bound: int = 0
    retried: int = 0

    @property
    def n_ok(self) -> int:
        return int(self.draws.shape[0])

    @property
    def n_failed(self) -> int:
        return int(sum(self.failed.values()))


def run_groups(units: np.ndarray) -> list[np.ndarray]:
    """Indices of the points of each unit (run), in order of first appearance."""
    _, first, inverse = np.unique(units, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == k) for k in order]


def resample_units(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Point indices of one replicate: len(groups) whole groups drawn with replacement."""
    chosen = rng.integers(0, len(groups), size=len(groups))
    return np.concatenate([groups[k] for k in chosen])


def bootstrap(
    law: LawForm,
    design: Design,
    y: np.ndarray,
    units: np.ndarray,
    theta_hat: np.ndarray,
    fit_options: FitOptions,
    options: BootstrapOptions,
    problem: Callable[[np.ndarray], Optional[str]],
) -> BootstrapResult:
    """Refit `law` on `options.B` run-resampled replicates.

    `problem(index)` says why a replicate cannot identify the law (None if it can); such
    replicates are counted under that reason and not fitted.
    """
    rng = np.random.default_rng(options.seed)
    groups = run_groups(units)
    warm = replace(fit_options, tolerance=options.refit_tolerance, max_nfev=options.refit_max_nfev)
    draws, failed, on_bound, retried = [], Counter(), 0, 0
    warm_start = bool(np.all(np.isfinite(theta_hat)))  # a non-finite optimum is no place to start from
    for _ in range(options.B):
        index = resample_units(groups, rng)
        reason = problem(index)
        if reason is not None:
            failed[reason.split(";")[0]] += 1  # the reason without its advice, as a short key
            continue
        distinct, counts = np.unique(index, return_counts=True)
        if warm_start:
            result = fit(law, design.take(distinct), y[:, distinct], warm, start=theta_hat, weights=counts)
        if not warm_start or not result.ok:
            retried += 1
            result = fit(law, design.take(index), y[:, index], fit_options)
        if not result.ok:
            failed[result.status] += 1
            continue
        on_bound += result.status == "on_bound"
        draws.append(result.theta)
    matrix = np.array(draws) if draws else np.empty((0, len(law.params)))
    return BootstrapResult(matrix, options.B, dict(failed), on_bound, retried)


def percentile_intervals(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the (1−level)/2 and (1+level)/2 percentiles, ignoring non-finite values."""
    if values.shape[0] == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan
    tail = 100 * (1 - level) / 2
    masked = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"):
        return np.nanpercentile(masked, tail, axis=0), np.nanpercentile(masked, 100 - tail, axis=0)
