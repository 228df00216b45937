"""Simulated studies with a known linear law, to measure whether the intervals cover the truth.

A study is a grid of ranks × seeds × evaluation steps, shaped like forgetlab's sweeps:

    L_ft = base_r + drop·exp(−N/τ) + v_run                 (a fine-tuning curve per run)
    L_f  = −c·L_ft + s + u_run + e_t                       (the linear law, with run effects)
    e_t  = φ·e_{t−1} + sqrt(1−φ²)·σ·z_t                    (autocorrelated within-run noise)

u_run ~ N(0, τ_u²) is a run-level random effect: the whole curve of a run sits above or below
the line, as seeds do. It is what makes points of one run correlated, and why intervals from
resampling points (or from too few units) are too narrow. `coverage` fits each study with the
real pipeline (`fit_points`, linear law) and counts how often the 95% interval holds the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def coverage(design: StudyDesign, studies: int, B: int, seed: int = 0, level: float = 0.95) -> dict:
    """Share of studies whose `level` intervals of c and s hold the truth, with the counts."""
    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.forms import get_law
    from forgetlab.laws.pipeline import fit_points

    law, rng = get_law("linear"), np.random.default_rng(seed)
    hits = {"c": 0, "s": 0}
    widths = {"c": [], "s": []}
    withheld = 0
    for study in range(studies):
        points = simulate_study(design, rng)
        options = BootstrapOptions(B=B, seed=study, level=level)
        result = fit_points(law, points, bootstrap_options=options, run_validation=False)
        if result.bootstrap["withheld"]:
            withheld += 1
            continue
        for name, truth in (("c", design.c), ("s", design.s)):
            low, high = result.intervals[name]
            hits[name] += low <= truth <= high
            widths[name].append(high - low)
    done = studies - withheld
    return {
        "studies": studies, "B": B, "level": level, "withheld": withheld,
        "coverage": {k: v / done if done else float("nan") for k, v in hits.items()},
        "median_width": {k: float(np.median(v)) if v else float("nan") for k, v in widths.items()},
    }  # fmt: skip
