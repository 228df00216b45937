"""Do the intervals cover the truth? Simulated studies on a real design, fitted four ways.

Each simulated study (`simulation.StudyTruth`: the study's runs, its fitted law as the truth,
noise like its residuals with a share common to every rank of a seed) is fitted with the real
pipeline (`fit_points`) and its 95% intervals are checked against the true parameters, for:

- `seed`: the default wherever seeds are crossed with ranks: the jackknife over whole seeds (each
  seed left out in turn, every rank of it), t on seeds − 1 df;
- `seed bootstrap`: the cluster bootstrap over whole seeds (n − 1 of n drawn), t on seeds − 1 df;
- `within rank`: the earlier bootstrap, seeds drawn independently within each rank, t on
  Σ(seeds − 1) df; it treats the ranks of one seed as independent;
- `per seed`: the law fitted to each seed's runs alone, the interval estimate ± t(seeds − 1)·sd/√seeds
  of those per-seed estimates (no resampling; the textbook answer for a few independent units).

`benchmarks/coverage.py` runs it at full size for docs/laws.md §6; tests/test_statistics.py a
small version on every CI run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forgetlab.laws.simulation import StudyTruth

METHODS = ("seed", "seed bootstrap", "within rank", "per seed")


@dataclass
class Tally:
    """Hits and widths per parameter for one method over the simulated studies."""

    hits: dict[str, int] = field(default_factory=dict)
    widths: dict[str, list] = field(default_factory=dict)
    estimates: dict[str, list] = field(default_factory=dict)
    studies: int = 0
    withheld: int = 0

    def add(self, truth: dict[str, float], intervals: dict[str, tuple], estimates: dict[str, float]) -> None:
        self.studies += 1
        if any(low is None or high is None for low, high in intervals.values()):
            self.withheld += 1
            return
        for name, value in truth.items():
            low, high = intervals[name]
            self.hits[name] = self.hits.get(name, 0) + int(low <= value <= high)
            self.widths.setdefault(name, []).append(high - low)
            self.estimates.setdefault(name, []).append(estimates[name])

    def coverage(self, name: str) -> float:
        done = self.studies - self.withheld
        return self.hits.get(name, 0) / done if done else float("nan")

    def median_width(self, name: str) -> float:
        values = self.widths.get(name)
        return float(np.median(values)) if values else float("nan")

    def spread(self, name: str) -> float:
        """The standard deviation of the estimates over the studies: what an interval's width should reflect."""
        values = self.estimates.get(name)
        return float(np.std(values, ddof=1)) if values and len(values) > 1 else float("nan")


def per_seed_intervals(truth: StudyTruth, points, level: float) -> tuple[dict[str, tuple], dict[str, float]]:
    """Fit each seed's runs alone; estimate (all seeds) ± t(S − 1)·sd/√S of the per-seed estimates."""
    from forgetlab.laws.fitting import fit
    from forgetlab.laws.forms import Design, Reference
    from forgetlab.laws.intervals import quantile

    law = truth.law
    reference = Reference.of(points.P, points.N)
    design = Design.build(points.P, points.N, points.L_ft, reference)
    y = points.targets(law)
    whole = fit(law, design, y)
    estimates = []
    for seed in np.unique(points.seed):
        index = np.flatnonzero(points.seed == seed)
        alone = fit(law, design.take(index), y[:, index], start=whole.theta)
        public = law.to_public(alone.theta, reference)
        estimates.append([public[name] for name in law.public_names])
    centre = law.to_public(whole.theta, reference)
    spread = np.std(np.array(estimates), axis=0, ddof=1) / np.sqrt(len(estimates))
    q = quantile(level, len(estimates) - 1)
    intervals = {name: (centre[name] - q * sd, centre[name] + q * sd) for name, sd in zip(law.public_names, spread)}
    return intervals, {name: float(centre[name]) for name in law.public_names}


def coverage(
    truth: StudyTruth, studies: int, B: int, seed: int = 0, level: float = 0.95, methods=METHODS
) -> dict[str, Tally]:
    """Per method, how often the `level` intervals of every public parameter hold the truth."""
    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.complete_fit import fit_points
    from forgetlab.laws.fitting import single_threaded_blas

    rng, expected = np.random.default_rng(seed), truth.public
    tallies = {method: Tally() for method in methods}
    with single_threaded_blas():
        for study in range(studies):
            points = truth.simulate(rng)
            for method in methods:
                if method == "per seed":
                    intervals, estimates = per_seed_intervals(truth, points, level)
                else:
                    options = BootstrapOptions(B=B, seed=study, level=level, unit=method)
                    result = fit_points(truth.law, points, bootstrap_options=options, run_validation=False)
                    intervals, estimates = {name: tuple(result.intervals[name]) for name in expected}, result.params
                tallies[method].add(expected, intervals, estimates)
    return tallies
