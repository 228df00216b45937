"""What the uncertainty of a fit is measured over: the study's independent units, from the design.

A forgetting study's runs differ in rank (the strata, fixed by the experimenter) and in seed. One
seed is one data order: the same batches, in the same order, at every rank (and in every `--by`
group). Where the seeds are crossed with the ranks, part of a run's deviation from the law is
therefore shared by every rank of its seed (in the study about half of the residual variance,
docs/laws.md §6), so the runs of one seed are not independent replicates: the unit is the seed.

- `SeedJackknife` (unit `seed`, the default wherever a seed value appears at more than one rank):
  the law is refitted with each seed left out in turn (every rank of it), and the interval is
  estimate ± t(seeds − 1)·SE, SE² = (S − 1)/S·Σ(θ₋ₛ − θ̄)². Chosen by simulation on the study's
  design against the cluster bootstrap over seeds (`SeedClusters`, kept for that comparison) and
  per-seed fits (docs/laws.md §6 has the coverage of each); it needs S refits instead of B, and
  each refit sees S − 1 seeds, which keeps the nonlinear laws' refits as well determined as a
  bootstrap replicate's.
- `SeedClusters` (unit `seed bootstrap`, on request): a replicate draws n − 1 of the n seeds with
  replacement, every rank of a drawn seed together.
- `WithinRank` (unit `seed within rank` where each seed appears at one rank only, `run within
  rank` where the points carry no seed): stratified by rank, a replicate draws n − 1 of a rank's n
  units with replacement (Rao & Wu 1988: the bootstrap variance of a mean is then unbiased), so
  every rank is in every replicate. Degrees of freedom Σ over ranks of (units − 1). Forced onto
  crossed seeds it treats the ranks of one seed as independent (§6 measures what that does).

The jackknife's refits are stored as pseudo-draws θ̂ + (S − 1)/√S·(θ₋ₛ − θ̄), whose standard
deviation is the jackknife SE: every consumer of draws (intervals, predictions, `--by`
differences, paired by seed) reads them as it reads bootstrap draws.

Seeds are what make an interval: one seed gives none (nothing measures seed-to-seed variation);
two give one degree of freedom (t = 12.7 at 95%) and an interval that rests on the difference of
two data orders (`caution`), shown with that warning rather than as if it were a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np

AUTO, SEED, SEED_BOOTSTRAP, WITHIN_RANK = "auto", "seed", "seed bootstrap", "within rank"
UNITS = (AUTO, SEED, SEED_BOOTSTRAP, WITHIN_RANK)
"""What `BootstrapOptions.unit` may ask for: auto (the seed jackknife when seeds are crossed with
ranks, else within ranks), seed (the jackknife), seed bootstrap, within rank."""
FEW_SEEDS = 2
"""With this many seeds an interval is given with a warning (1 degree of freedom)."""


class _Replicated:
    """Random replicates (the bootstraps): `B` of them, each drawn by `resample`, used as drawn."""

    complete = False
    """Whether every replicate must succeed (a jackknife leaves no seed out twice)."""

    def requested(self, B: int) -> int:
        return B

    def replicates(self, rng: np.random.Generator, B: int) -> Iterator[np.ndarray]:
        for _ in range(B):
            yield self.resample(rng)

    def combine(self, draws: np.ndarray, estimate: np.ndarray) -> np.ndarray:
        return draws


@dataclass(frozen=True, eq=False)
class SeedClusters(_Replicated):
    """Whole seeds, bootstrapped: the point indices of each seed (all its ranks), seeds in ascending order."""

    clusters: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    unit: str = SEED

    @property
    def units(self) -> int:
        return len(self.clusters)

    @property
    def df(self) -> int:
        return self.units - 1

    @property
    def scheme(self) -> str:
        return (
            "cluster bootstrap over seeds: a replicate draws n − 1 of the n seeds with replacement, every rank of a "
            "drawn seed together (one seed is one data order, shared by every rank); Rao & Wu rescaling"
        )

    def summary(self) -> str:
        return f"whole seeds, bootstrapped ({self.units} seeds, every rank of a seed together; t on {self.df} df)"

    def problem(self) -> Optional[str]:
        if self.units >= 2:
            return None
        return (
            "a single seed: every run shares one data order, so nothing measures seed-to-seed variation and no "
            "interval is given (run at least 3 seeds, 4 or more for intervals you report)"
        )

    def caution(self) -> Optional[str]:
        if self.units > FEW_SEEDS:
            return None
        return (
            f"only {self.units} seeds: the interval rests on {self.df} degree of freedom (t = 12.7) and on the "
            "difference between two data orders; read it as a rough range, not a measurement (run 4 or more seeds)"
        )

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        chosen = rng.integers(0, self.units, size=self.units - 1)
        return np.concatenate([self.clusters[k] for k in chosen])


@dataclass(frozen=True, eq=False)
class SeedJackknife(SeedClusters):
    """Whole seeds, each left out in turn (the default for crossed seeds; see the module docstring)."""

    complete = True

    @property
    def scheme(self) -> str:
        return (
            "jackknife over seeds: the law refitted with each seed left out in turn, every rank of it (one seed is one "
            "data order, shared by every rank); SE² = (S − 1)/S·Σ(θ₋ₛ − θ̄)², stored as pseudo-draws θ̂ + (S − 1)/√S·(θ₋ₛ − θ̄)"
        )

    def summary(self) -> str:
        return f"whole seeds ({self.units} seeds, each left out in turn with every rank of it; t on {self.df} df)"

    def requested(self, B: int) -> int:
        return self.units

    def replicates(self, rng: np.random.Generator, B: int) -> Iterator[np.ndarray]:
        for left_out in range(self.units):
            yield np.concatenate([cluster for k, cluster in enumerate(self.clusters) if k != left_out])

    def combine(self, draws: np.ndarray, estimate: np.ndarray) -> np.ndarray:
        """Pseudo-draws whose standard deviation (ddof 1) is the jackknife SE, centred on the estimate."""
        S = self.units
        return estimate + (S - 1) / np.sqrt(S) * (draws - draws.mean(axis=0))


@dataclass(frozen=True, eq=False)
class WithinRank(_Replicated):
    """Units drawn within their rank: the point indices of every unit, grouped by stratum (rank), both sorted."""

    strata: tuple[tuple[np.ndarray, ...], ...]
    labels: tuple[str, ...]
    unit: str = "seed within rank"

    @property
    def units(self) -> int:
        return int(sum(len(units) for units in self.strata))

    @property
    def df(self) -> int:
        """Degrees of freedom of the between-unit variation: Σ over ranks of (units − 1)."""
        return int(sum(len(units) - 1 for units in self.strata))

    @property
    def scheme(self) -> str:
        what = "seeds" if self.unit.startswith("seed") else "runs"
        return (
            f"stratified by rank: a replicate draws n − 1 of a rank's n {what} with replacement, each run whole "
            "(every rank in every replicate); Rao & Wu rescaling"
        )

    def summary(self) -> str:
        what = "seeds" if self.unit.startswith("seed") else "runs"
        return f"{what} within ranks ({self.units} {what} over {len(self.strata)} ranks; t on {self.df} df)"

    def problem(self) -> Optional[str]:
        single = [label for label, units in zip(self.labels, self.strata) if len(units) < 2]
        if not single:
            return None
        return (
            f"rank {', '.join(single)} {'has' if len(single) == 1 else 'have'} a single run (seed): with fewer than two "
            "independent runs per rank nothing measures run-to-run variation, so no interval is given (run at least 2 seeds per rank)"
        )

    def caution(self) -> Optional[str]:
        return None

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """Point indices of one replicate: n−1 of each stratum's n units, drawn with replacement."""
        parts = []
        for units in self.strata:
            chosen = rng.integers(0, len(units), size=len(units) - 1)
            parts.extend(units[k] for k in chosen)
        return np.concatenate(parts)


Frame = Union[SeedJackknife, SeedClusters, WithinRank]


def resampling_frame(
    rank: np.ndarray, run_id: np.ndarray, seed: Optional[np.ndarray] = None, unit: str = AUTO
) -> Frame:
    """The units of these points. `unit`: AUTO (the seed jackknife where a seed appears at more than
    one rank, else within ranks), SEED, SEED_BOOTSTRAP or WITHIN_RANK (forced; the seed schemes need
    every point's seed)."""
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r}: one of {', '.join(UNITS)}")
    rank = np.asarray(rank, dtype=float)
    seeds = None if seed is None else np.asarray(seed, dtype=float)
    known = seeds is not None and seeds.size > 0 and bool(np.all(np.isfinite(seeds)))
    if unit in (SEED, SEED_BOOTSTRAP) and not known:
        raise ValueError(f"unit {unit!r} needs every point's seed")
    if known and (unit in (SEED, SEED_BOOTSTRAP) or (unit == AUTO and crossed(rank, seeds))):
        values = np.unique(seeds)
        kind = SeedClusters if unit == SEED_BOOTSTRAP else SeedJackknife
        return kind(tuple(np.flatnonzero(seeds == v) for v in values), tuple(f"{v:g}" for v in values))
    keys = np.array([f"{s:g}" for s in seeds]) if known else np.asarray(run_id).astype(str)
    strata, labels = [], []
    for r in np.unique(rank):
        in_rank = rank == r
        names = sorted(set(keys[in_rank]), key=_natural)
        strata.append(tuple(np.flatnonzero(in_rank & (keys == k)) for k in names))
        labels.append(f"{r:g}")
    return WithinRank(tuple(strata), tuple(labels), "seed within rank" if known else "run within rank")


def crossed(rank: np.ndarray, seed: np.ndarray) -> bool:
    """Does some seed value appear at more than one rank (so its runs share a data order)?"""
    pairs = {(float(s), float(r)) for s, r in zip(seed, rank)}
    seen: dict[float, int] = {}
    for s, _ in pairs:
        seen[s] = seen.get(s, 0) + 1
    return any(count > 1 for count in seen.values())


def _natural(key: str):
    """Seeds sort as numbers, run ids as text (so a paired design lines its units up the same way)."""
    try:
        return (0, float(key), "")
    except ValueError:
        return (1, 0.0, key)
