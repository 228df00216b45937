"""Bootstrap by design: parameter uncertainty from resampling the study's experimental units.

The design of a forgetting study: per data set, a few ranks (strata, fixed by the experimenter),
and at each rank a few runs that differ only in their seed (the replicates). Points of one run
are one curve and correlated, so the unit resampled is never a point. It is the seed within a
rank: the runs of one (rank, seed) — one run in a clean study — are drawn whole.

Scheme (`stratified`, the default and only scheme): per replicate and per rank with n units,
draw n − 1 units with replacement. Stratifying keeps every rank in every replicate (the ranks
are the design, not a sample: a replicate without the largest rank is not the same study), and
n − 1 instead of n is the rescaling of Rao & Wu (1988) that makes the bootstrap variance of a
stratum mean unbiased (drawing n gives (n−1)/n of it: half with two seeds, hence intervals
too narrow). A rank with fewer than two units has no within-rank variation to resample:
then no interval is given, and the fit says why (`design_problem`).

Intervals (`intervals.py`) are estimate ± t·sd of the successful draws, t on the design's
degrees of freedom Σ(n − 1).

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

SCHEME = (
    "stratified by rank; unit = the seed within a rank (its run drawn whole); per replicate n−1 of a rank's n units "
    "drawn with replacement (Rao & Wu rescaling)"
)


@dataclass(frozen=True)
class BootstrapOptions:
    """How parameter uncertainty is estimated. Every field is recorded with the result."""

    B: int = 1000
    """Number of bootstrap replicates."""
    seed: int = 0
    """Seed of numpy's default_rng that draws the replicates."""
    level: float = 0.95
    """Coverage of the percentile intervals."""
    stream: Optional[str] = None
    """A name giving this fit its own random stream (default_rng([seed, crc32(name)])); None: default_rng(seed)."""
    min_success: float = 0.8
    """Intervals are withheld when fewer than this share of the B refits succeed (the rest are not a random loss)."""
    unit: str = "seed within rank"
    """What is resampled (recorded for readers; the scheme is `SCHEME`)."""
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


@dataclass(frozen=True, eq=False)
class SamplingFrame:
    """The point indices of every unit, grouped by stratum (rank), both in sorted order."""

    strata: tuple[tuple[np.ndarray, ...], ...]
    labels: tuple[str, ...]

    def problem(self) -> Optional[str]:
        """Why no interval can be given (a stratum with fewer than two units), or None."""
        single = [label for label, units in zip(self.labels, self.strata) if len(units) < 2]
        if not single:
            return None
        return (
            f"rank {', '.join(single)} {'has' if len(single) == 1 else 'have'} a single run (seed): with fewer than two "
            "independent runs per rank nothing measures run-to-run variation, so no interval is given (run at least 2 seeds per rank)"
        )

    @property
    def df(self) -> int:
        """Degrees of freedom of the between-unit variation: Σ over ranks of (units − 1)."""
        return int(sum(len(units) - 1 for units in self.strata))

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """Point indices of one replicate: n−1 of each stratum's n units, drawn with replacement."""
        parts = []
        for units in self.strata:
            chosen = rng.integers(0, len(units), size=len(units) - 1)
            parts.extend(units[k] for k in chosen)
        return np.concatenate(parts)


def sampling_frame(rank: np.ndarray, run_id: np.ndarray, seed: Optional[np.ndarray] = None) -> SamplingFrame:
    """Strata = ranks; units = seeds within a rank (run ids where the seed is unknown)."""
    rank = np.asarray(rank, dtype=float)
    has_seed = seed is not None and np.all(np.isfinite(np.asarray(seed, dtype=float)))
    unit_key = np.array([f"{s:g}" for s in np.asarray(seed, dtype=float)]) if has_seed else np.asarray(run_id).astype(str)
    strata, labels = [], []
    for r in np.unique(rank):
        in_rank = rank == r
        keys = sorted(set(unit_key[in_rank]), key=_natural)
        strata.append(tuple(np.flatnonzero(in_rank & (unit_key == k)) for k in keys))
        labels.append(f"{r:g}")
    return SamplingFrame(tuple(strata), tuple(labels))


def _natural(key: str):
    """Seeds sort as numbers, run ids as text (so a paired design lines its units up the same way)."""
    try:
        return (0, float(key), "")
    except ValueError:
        return (1, 0.0, key)


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
    """Degrees of freedom of the design (`SamplingFrame.df`): the t quantile of the intervals."""

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
    frame: SamplingFrame,
    theta_hat: np.ndarray,
    fit_options: FitOptions,
    options: BootstrapOptions,
    problem: Callable[[np.ndarray], Optional[str]],
) -> BootstrapResult:
    """Refit `law` on `options.B` replicates drawn from `frame`.

    `problem(index)` says why a replicate cannot identify the law (None if it can); such
    replicates are counted under that reason and not fitted.
    """
    rng = options.rng()
    warm = replace(fit_options, tolerance=options.refit_tolerance, max_nfev=options.refit_max_nfev)
    draws, replicates, failed, on_bound, retried = [], [], Counter(), 0, 0
    warm_start = bool(np.all(np.isfinite(theta_hat)))  # a non-finite optimum is no place to start from
    for replicate in range(options.B):
        index = frame.resample(rng)
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
    matrix = np.array(draws) if draws else np.empty((0, len(law.params)))
    replicate_numbers = np.array(replicates, dtype=int)
    return BootstrapResult(matrix, options.B, dict(failed), on_bound, retried, replicate_numbers, df=frame.df)


def _refit(law, design, y, index, start, warm: FitOptions, cold: FitOptions):
    """Warm refit on the distinct points with multiplicities; from the grid if that fails."""
    if start is not None:
        distinct, counts = np.unique(index, return_counts=True)
        result = fit(law, design.take(distinct), y[:, distinct], warm, start=start, weights=counts)
        if result.ok:
            return result, False
    return fit(law, design.take(index), y[:, index], cold), True


def not_attempted(law: LawForm, options: BootstrapOptions, reason: str) -> BootstrapResult:
    return BootstrapResult(np.empty((0, len(law.params))), options.B, {}, not_attempted=reason)


def withheld(result: BootstrapResult, options: BootstrapOptions) -> Optional[str]:
    """Why the intervals must not be shown, or None."""
    if result.not_attempted:
        return result.not_attempted
    if result.n_ok < 2:
        return f"{result.n_ok} of {result.requested} bootstrap refits succeeded: too few for an interval"
    if result.n_ok < options.min_success * result.requested:
        return (
            f"only {result.n_ok} of {result.requested} bootstrap refits succeeded (< {options.min_success:.0%}); the "
            "failures are not a random loss, so the intervals are withheld"
        )
    return None
