"""The fitting objective: Huber loss on log residuals, summed over points and targets.

    r_i = ln(prediction_i) − ln(observed_i)
    objective = Σ_i huber_δ(r_i),   huber_δ(r) = r²/2 if |r| ≤ δ else δ·(|r| − δ/2)

Why logs: losses of different data sets and targets (L_ft ≈ 2, L_f ≈ 0.8) then weigh by their
relative error, and the residuals of a multiplicative noise model are homoscedastic. Why Huber:
one bad evaluation (a loss spike) moves a least-squares fit of a dozen parameters a lot; Huber
grows only linearly beyond δ. δ = 1e-3 (a 0.1% relative error) follows Hoffmann et al. (2022)
and Epoch AI's replication; residuals below δ are treated as Gaussian noise, larger ones as
outliers. It is `FitOptions.huber_delta` / `--huber-delta`.

This is exactly what `scipy.optimize.least_squares(loss="huber", f_scale=δ)` minimises
(its cost is ½·δ²·Σ ρ((r/δ)²) with ρ(z) = z or 2√z − 1, which equals Σ huber_δ(r)).
"""

from __future__ import annotations

import numpy as np

DEFAULT_HUBER_DELTA = 1e-3
TINY = 1e-12  # predictions are floored here before the log, so a wild step stays finite


def log_residuals(prediction: np.ndarray, log_observed: np.ndarray) -> np.ndarray:
    """ln(pred) − ln(obs), flattened over targets; non-positive predictions are floored at TINY."""
    return (np.log(np.maximum(prediction, TINY)) - log_observed).reshape(-1)


def log_residual_jacobian(prediction: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """d ln(pred) / d theta from d pred / d theta; zero where the prediction was floored."""
    scale = np.where(prediction > TINY, 1.0 / np.maximum(prediction, TINY), 0.0)
    return (jacobian * scale[..., None]).reshape(-1, jacobian.shape[-1])


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def objective(prediction: np.ndarray, log_observed: np.ndarray, delta: float) -> np.ndarray:
    """The objective for one or many predictions: sums over the last axis (points) and the
    target axis (second to last) when predictions have shape (..., targets, n)."""
    r = np.log(np.maximum(prediction, TINY)) - log_observed
    return huber(r, delta).sum(axis=(-2, -1))
