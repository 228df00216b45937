"""Simulated studies with a known linear law, to measure whether the intervals cover the truth.

A study is a grid of ranks × seeds × evaluation steps, shaped like forgetlab's sweeps:

    L_ft = base_r + drop·exp(−N/τ) + v_run                 (a fine-tuning curve per run)
    L_f  = −c·L_ft + s + u_run + e_t                       (the linear law, with run effects)
    e_t  = φ·e_{t−1} + sqrt(1−φ²)·σ·z_t                    (autocorrelated within-run noise)

u_run ~ N(0, τ_u²) is a run-level random effect: the whole curve of a run sits above or below
the line, as seeds do. It is what makes points of one run correlated, and why intervals from
resampling points (or from too few units) are too narrow.

`StudyTruth` simulates on a real study's design instead: its runs' ranks, seeds, N and L_ft, a
law fitted to its points as the truth, and noise shaped like its residuals (`estimate_noise`),
with a part shared by every rank of a seed (one seed is one data order). `coverage.py` fits such
studies and counts how often the intervals hold the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.points import Points


@dataclass(frozen=True)
class StudyDesign:
    """The simulated study: grid, true law and noise (nats)."""

    ranks: tuple[int, ...] = (1, 4, 16, 64)
    seeds: int = 4
    steps: tuple[int, ...] = tuple(range(60, 301, 30))
    c: float = 1.2
    s: float = 6.0
    run_effect: float = 0.02
    """τ_u: standard deviation of a run's offset from the line."""
    noise: float = 0.01
    """σ: within-run noise."""
    autocorrelation: float = 0.7
    """φ of the AR(1) within-run noise."""


def simulate_study(design: StudyDesign, rng: np.random.Generator) -> Points:
    """One study's points (data set 'sim', variant 'hard')."""
    N = np.array(design.steps, dtype=float)
    columns: dict[str, list] = {"run": [], "rank": [], "seed": [], "N": [], "L_ft": [], "L_f": []}
    for rank in design.ranks:
        base = 4.5 - 0.08 * np.log2(rank)
        for seed in range(design.seeds):
            L_ft = base + 0.3 * np.exp(-N / 120.0) + rng.normal(0.0, 0.02)
            noise = _ar1(len(N), design.autocorrelation, design.noise, rng)
            L_f = -design.c * L_ft + design.s + rng.normal(0.0, design.run_effect) + noise
            for key, values in (("N", N), ("L_ft", L_ft), ("L_f", L_f)):
                columns[key].extend(values)
            columns["run"].extend([f"r{rank}-s{seed}"] * len(N))
            columns["rank"].extend([rank] * len(N))
            columns["seed"].extend([seed] * len(N))
    rank = np.array(columns["rank"], dtype=float)
    return Points(
        "sim", "hard", np.array(columns["run"]), rank, 1e5 * rank, np.array(columns["N"]),
        np.array(columns["L_ft"]), np.array(columns["L_f"]), np.array(columns["seed"], dtype=float),
    )  # fmt: skip


def _ar1(n: int, phi: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    e = np.empty(n)
    e[0] = rng.normal(0.0, sigma)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + np.sqrt(1 - phi**2) * rng.normal(0.0, sigma)
    return e


@dataclass(frozen=True)
class Noise:
    """A run's deviation from the law, in nats: √share·X_seed + √(1 − share)·X_run, with X_seed
    shared by every rank of a seed and X_run its own. Each X is a constant offset plus an AR(1)
    series over the evaluation steps, of total variance sd²."""

    sd: float
    """Standard deviation of one point's deviation."""
    offset: float
    """Share of the variance that is a constant offset per curve (the rest is the AR(1) series)."""
    autocorrelation: float
    """φ of the AR(1) series, step to step."""
    seed_share: float = 0.0
    """Share of the variance shared by every rank of a seed."""


def estimate_noise(points: Points, prediction: np.ndarray) -> Noise:
    """The noise of a study's residuals (L_f − prediction), balanced ranks × seeds × steps.

    With R ranks and S seeds: r' = residual minus its mean over seeds at each (rank, N) (that mean
    is the law's lack of fit, the same for every seed); the mean of r' over ranks at each (seed, N)
    has variance (S−1)/S·(V_seed + V_run/R), r' itself (S−1)/S·(V_seed + V_run); solved for V_seed,
    V_run. The offset share is the variance of the runs' mean r' over V; φ the lag-1
    autocorrelation of r' about each run's mean, pooled over runs.
    """
    import pandas as pd

    frame = pd.DataFrame({"rank": points.rank, "seed": points.seed, "N": points.N, "r": points.L_f - prediction})
    cells = frame.groupby(["rank", "seed", "N"])["r"].mean().unstack("seed").dropna()  # (rank, N) × seed
    S = cells.shape[1]
    R = cells.index.get_level_values("rank").nunique()
    centred = cells.sub(cells.mean(axis=1), axis=0)  # r'
    total = float((centred.to_numpy() ** 2).mean()) * S / (S - 1)
    by_seed = centred.groupby(level="N").mean()  # mean over ranks, per (N, seed)
    shared_plus = float((by_seed.to_numpy() ** 2).mean()) * S / (S - 1)
    run_variance = max(0.0, (total - shared_plus) * R / (R - 1))
    seed_variance = max(0.0, total - run_variance)
    long = centred.stack().rename("r").reset_index()
    run_means = long.groupby(["rank", "seed"])["r"].transform("mean")
    offset = float(long.groupby(["rank", "seed"])["r"].mean().pow(2).mean()) * S / (S - 1) / total
    within = (long["r"] - run_means).to_numpy()
    runs = long.assign(w=within).sort_values(["rank", "seed", "N"]).groupby(["rank", "seed"])["w"]
    lagged = sum(float(np.dot(w[:-1], w[1:])) for w in (g.to_numpy() for _, g in runs))
    phi = lagged / float(np.dot(within, within))
    return Noise(
        float(np.sqrt(total)), float(np.clip(offset, 0, 1)), float(np.clip(phi, 0, 0.99)), seed_variance / total
    )


def noise_process(n: int, noise: Noise, rng: np.random.Generator) -> np.ndarray:
    """One X: an offset of variance offset·sd² plus an AR(1) series of variance (1 − offset)·sd²."""
    offset = rng.normal(0.0, noise.sd * np.sqrt(noise.offset))
    return offset + _ar1(n, noise.autocorrelation, noise.sd * np.sqrt(1 - noise.offset), rng)


@dataclass(frozen=True, eq=False)
class StudyTruth:
    """A real study's design (its points' runs, ranks, seeds, N and L_ft) with a known law on it."""

    law: LawForm
    points: Points
    theta: np.ndarray
    """The true parameters (internal), on the points' own reference point."""
    noise: Noise

    @classmethod
    def fitted(cls, law: LawForm, points: Points, theta: Optional[np.ndarray] = None) -> "StudyTruth":
        """The law fitted to the points as the truth (or `theta`), the noise from its residuals."""
        from forgetlab.laws.fitting import fit

        design = Design.build(points.P, points.N, points.L_ft, Reference.of(points.P, points.N))
        if theta is None:
            theta = fit(law, design, points.targets(law)).theta
        prediction = law.predict(theta, design)[law.targets.index("L_f")]
        return cls(law, points, theta, estimate_noise(points, prediction))

    @property
    def public(self) -> dict[str, float]:
        reference = Reference.of(self.points.P, self.points.N)
        public = self.law.to_public(self.theta, reference)
        return {name: float(public[name]) for name in self.law.public_names}

    def calibrated(self, rng: np.random.Generator, rounds: int = 5, studies: int = 60) -> "StudyTruth":
        """The noise corrected for the estimator's bias on series this short (25 steps: φ comes
        out low and the offset share high, since an AR(1) series' mean looks like an offset):
        simulate, re-estimate, move each value by the gap to the study's own estimate."""
        target, noise = self.noise, self.noise
        for _ in range(rounds):
            trial = replace(self, noise=noise)
            found = [trial._reestimate(rng) for _ in range(studies)]
            mean = {
                k: float(np.mean([getattr(f, k) for f in found]))
                for k in ("sd", "offset", "autocorrelation", "seed_share")
            }
            noise = Noise(
                sd=noise.sd * target.sd / mean["sd"],
                offset=float(np.clip(noise.offset + target.offset - mean["offset"], 0.0, 1.0)),
                autocorrelation=float(
                    np.clip(noise.autocorrelation + target.autocorrelation - mean["autocorrelation"], 0.0, 0.99)
                ),
                seed_share=float(np.clip(noise.seed_share + target.seed_share - mean["seed_share"], 0.0, 1.0)),
            )
        return replace(self, noise=noise)

    def _reestimate(self, rng: np.random.Generator) -> Noise:
        simulated = self.simulate(rng)
        design = Design.build(simulated.P, simulated.N, simulated.L_ft, Reference.of(simulated.P, simulated.N))
        return estimate_noise(simulated, self.law.predict(self.theta, design)[self.law.targets.index("L_f")])

    def with_seed_share(self, share: float) -> "StudyTruth":
        return replace(self, noise=replace(self.noise, seed_share=share))

    def keep_seeds(self, count: int) -> "StudyTruth":
        """The same study with only its first `count` seeds (the truth unchanged)."""
        kept = np.isin(self.points.seed, np.unique(self.points.seed)[:count])
        return replace(self, points=self.points.take(np.flatnonzero(kept)))

    def simulate(self, rng: np.random.Generator) -> Points:
        """The study's points with L_f = the law + shared and own noise (L_ft as observed)."""
        points = self.points
        design = Design.build(points.P, points.N, points.L_ft, Reference.of(points.P, points.N))
        L_f = self.law.predict(self.theta, design)[self.law.targets.index("L_f")].copy()
        steps = np.unique(points.N)
        position = np.searchsorted(steps, points.N)
        share = self.noise.seed_share
        shared = {s: noise_process(len(steps), self.noise, rng) for s in np.unique(points.seed)}
        for run in np.unique(points.run_id):
            mine = np.flatnonzero(points.run_id == run)
            own = noise_process(len(steps), self.noise, rng)
            seed = points.seed[mine[0]]
            L_f[mine] += np.sqrt(share) * shared[seed][position[mine]] + np.sqrt(1 - share) * own[position[mine]]
        return replace(points, L_f=L_f)
