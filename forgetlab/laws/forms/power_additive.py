"""`power-additive`: a simpler alternative for L_f(P, N), to compare forms on the same points."""

from __future__ import annotations

import numpy as np

from forgetlab.laws.forms.base import Design, LawForm, ParamSpec, Reference, register_form
from forgetlab.laws.objective import objective

INF = np.inf
EXPONENT_BOUNDS = (1e-4, 5.0)
EXPONENT_GRID = np.geomspace(0.01, 2.0, 12)


@register_form
class PowerAdditiveLaw(LawForm):
    """L_f = E − A·P^(−α) − B·N^(−β)   (Chinchilla-style additive power law, mirrored).

    Forgetting rises with P and N towards the asymptote E; the two resources act additively,
    with no shared exponent ρ. Five parameters instead of the paper's six for L_f alone.

    Parameters (public):
      E       asymptotic forgetting
      A, B    sizes of the P and N terms (≥ 0: forgetting must not fall with more P or N;
              a fit that wants it to ends on the bound and is flagged `on_bound`)
      alpha   exponent of P, in [1e-4, 5]
      beta    exponent of N, in [1e-4, 5]

    Internally, with x = P/P0 and y = N/N0 and q(e, z) = (z^(−e) − 1)/e:

        L_f = L_f_ref − slope_P·q(α, x) − slope_N·q(β, y)

    L_f_ref is L_f at the reference point, slope_P and slope_N its slopes in ln P and ln N there
    (A = slope_P/α·P0^α, B = slope_N/β·N0^β, E = L_f_ref + slope_P/α + slope_N/β). q stays finite
    (→ −ln z) as an exponent goes to 0, so a law that wants a logarithm ends on the exponent's
    bound quickly instead of crawling with E and B → infinity. L_f_ref, slope_P, slope_N enter
    linearly; α, β are searched on a 12 × 12 log-spaced grid from 0.01 to 2.
    """

    name = "power-additive"
    summary = "L_f = E - A*P^-alpha - B*N^-beta"
    equation = "L_f = E − A·P^(−α) − B·N^(−β)"
    grid = (
        "alpha × beta: 12 × 12 log-spaced values from 0.01 to 2; L_f_ref, slope_P, slope_N solved by "
        "weighted least squares (w = 1/L_f², clipped at 0) at each"
    )
    targets = ("L_f",)
    inputs = ("P", "N")
    params = (
        ParamSpec("L_f_ref", 0.0, INF, True, "L_f at (P0, N0)"),
        ParamSpec("slope_P", 0.0, INF, True, "slope of L_f in ln P at (P0, N0)"),
        ParamSpec("slope_N", 0.0, INF, True, "slope of L_f in ln N at (P0, N0)"),
        ParamSpec("alpha", *EXPONENT_BOUNDS, False, "exponent of P"),
        ParamSpec("beta", *EXPONENT_BOUNDS, False, "exponent of N"),
    )
    public_names = ("E", "A", "B", "alpha", "beta")

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        level, slope_p, slope_n, alpha, beta = theta
        return (level - slope_p * _q(alpha, design.lnx) - slope_n * _q(beta, design.lny))[None, :]

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        level, slope_p, slope_n, alpha, beta = theta
        qx, qy = _q(alpha, design.lnx), _q(beta, design.lny)
        return np.stack(
            [np.ones_like(qx), -qx, -qy, -slope_p * _dq(alpha, design.lnx, qx), -slope_n * _dq(beta, design.lny, qy)],
            axis=-1,
        )[None]

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        level, slope_p, slope_n, alpha, beta = (float(v) for v in theta)
        return {
            "E": level + slope_p / alpha + slope_n / beta,
            "A": slope_p / alpha * reference.P0**alpha,
            "B": slope_n / beta * reference.N0**beta,
            "alpha": alpha,
            "beta": beta,
        }

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        alpha, beta = public["alpha"], public["beta"]
        a_ref, b_ref = public["A"] * reference.P0 ** (-alpha), public["B"] * reference.N0 ** (-beta)
        return np.array([public["E"] - a_ref - b_ref, a_ref * alpha, b_ref * beta, alpha, beta], dtype=float)

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        target = y[0]
        alpha, beta = (g.ravel() for g in np.meshgrid(EXPONENT_GRID, EXPONENT_GRID, indexing="ij"))
        qx = _q(alpha[:, None], design.lnx[None, :])
        qy = _q(beta[:, None], design.lny[None, :])
        basis = np.stack([np.ones_like(qx), -qx, -qy], axis=-1)  # (grid, n, 3)
        w = 1.0 / target**2
        normal = np.einsum("gni,n,gnj->gij", basis, w, basis)
        rhs = np.einsum("gni,n->gi", basis, w * target)
        normal += 1e-12 * np.eye(3) * np.trace(normal, axis1=1, axis2=2)[:, None, None]
        linear = np.linalg.solve(normal, rhs[..., None])[..., 0]
        linear = np.maximum(linear, 0.0)  # the linear parameters are all bounded below by 0
        prediction = np.einsum("gni,gi->gn", basis, linear)
        cost = objective(prediction[:, None, :], np.log(target), delta)
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf))[:count]
        return np.column_stack([linear[order], alpha[order], beta[order]])


def _q(exponent, log_z):
    """(z^(−e) − 1)/e, accurate for tiny e."""
    return np.expm1(-exponent * log_z) / exponent


def _dq(exponent, log_z, q):
    """d q / d e = −(ln z · z^(−e) + q)/e."""
    return -(log_z * np.exp(-exponent * log_z) + q) / exponent
