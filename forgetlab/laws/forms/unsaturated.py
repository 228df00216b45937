"""Forms that do not saturate in N, to test the saturation the shifted power laws assume.

`paper-joint` and `power-additive` both level off as N grows (forgetting tends to an asymptote).
These two keep rising for ever; if they predict later steps as well as the shifted forms
(validation held out in N, `validation.py`), the data do not show saturation.

    log-steps    L_f = E + A·ln(P/P0) + B·ln(N/N0)     (every parameter linear)
    power-steps  L_f = K·(P/P0)^α·(N/N0)^β             (a pure power: linear in logs)
"""

from __future__ import annotations

import numpy as np

from forgetlab.laws.forms.base import (
    Design,
    LawForm,
    LinearInParameters,
    ParamSpec,
    Reference,
    register_form,
    weighted_least_squares,
)

INF = np.inf
POWER_BOUNDS = (-5.0, 5.0)


@register_form
class LogStepsLaw(LinearInParameters):
    """L_f = E + A·ln(P/P0) + B·ln(N/N0): forgetting grows by B nats per e-fold of steps, without limit."""

    name = "log-steps"
    summary = "L_f = E + A*ln(P/P0) + B*ln(N/N0) (no saturation in N)"
    equation = "L_f = E + A·ln(P/P0) + B·ln(N/N0)"
    grid = "none: the start is the exact weighted least-squares fit (w = 1/L_f²)"
    targets = ("L_f",)
    inputs = ("P", "N")
    params = (
        ParamSpec("E", -INF, INF, True, "L_f at (P0, N0)"),
        ParamSpec("A", -INF, INF, True, "nats per e-fold of P"),
        ParamSpec("B", -INF, INF, True, "nats per e-fold of N"),
    )
    public_names = ("E", "A", "B")

    def _basis(self, design: Design) -> np.ndarray:
        return np.stack([np.ones_like(design.lnx), design.lnx, design.lny], axis=-1)


@register_form
class PowerStepsLaw(LawForm):
    """L_f = K·(P/P0)^α·(N/N0)^β: a pure power in P and N, no shift, no asymptote."""

    name = "power-steps"
    summary = "L_f = K*(P/P0)^alpha*(N/N0)^beta (no saturation in N)"
    equation = "L_f = K·(P/P0)^α·(N/N0)^β"
    grid = "none: the start is least squares of ln L_f on ln(P/P0), ln(N/N0)"
    targets = ("L_f",)
    inputs = ("P", "N")
    params = (
        ParamSpec("K", 0.0, INF, True, "L_f at (P0, N0)"),
        ParamSpec("alpha", *POWER_BOUNDS, False, "exponent of P"),
        ParamSpec("beta", *POWER_BOUNDS, False, "exponent of N"),
    )
    public_names = ("K", "alpha", "beta")

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        K, alpha, beta = theta
        return (K * np.exp(alpha * design.lnx + beta * design.lny))[None, :]

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        K, alpha, beta = theta
        power = np.exp(alpha * design.lnx + beta * design.lny)
        return np.stack([power, K * power * design.lnx, K * power * design.lny], axis=-1)[None]

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.public_names, theta)}

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        return np.array([public[name] for name in self.public_names], dtype=float)

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        basis = np.stack([np.ones_like(design.lnx), design.lnx, design.lny], axis=-1)
        log_k, alpha, beta = weighted_least_squares(basis, np.log(y[0]), np.ones_like(y[0]))
        return np.array([[np.exp(log_k), np.clip(alpha, *POWER_BOUNDS), np.clip(beta, *POWER_BOUNDS)]])
