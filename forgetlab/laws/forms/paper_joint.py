"""`paper-joint`: the paper's shifted power laws for L_ft(P, N) and L_f(P, N), fitted jointly."""

from __future__ import annotations

from typing import Optional

import numpy as np

from forgetlab.laws.forms.base import Design, LawForm, ParamSpec, Reference, register_form, weighted_line
from forgetlab.laws.objective import objective

INF = np.inf
EXPONENT_BOUNDS = (1e-4, 5.0)
RHO_BOUNDS = (0.01, 30.0)
RHO_GRID = np.geomspace(0.25, 16.0, 10)
SHARE_GRID = np.array([0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
EXPONENT_GRID = np.geomspace(0.005, 1.5, 8)
PER_BLOCK_CANDIDATES = 2  # best grid points kept per block and per ρ before pairing


@register_form
class PaperJointLaw(LawForm):
    """The shifted power laws in P and N, L_ft and L_f fitted jointly (a reconstruction).

    The typeset equations of the paper could not be read; this is the project's reconstruction
    from the published parameter names and Table 1 values (it reproduces Eq. 4 to within
    0.006 nats on the paper's grid):

        L_ft(P, N) = c_ft · [ (a_ft/P)^α_ft + (b_ft/N)^β_ft ]^ρ + s_ft
        L_f(P, N)  = −c_f_ft · ( c_ft · [ (a_f/P)^α_f + (b_f/N)^β_f ]^ρ + s_ft ) + s_f_ft

    c_ft, s_ft and ρ are shared. Treat every result of this form as a fit of a reconstruction.

    Two exact symmetries (gauges). For any λ > 0 and μ > 0 these give *identical* predictions:

        c_ft → c_ft·λ^(−ρ),   a_ft → a_ft·λ^(1/α_ft), b_ft → b_ft·λ^(1/β_ft),
                              a_f → a_f·λ^(1/α_f),    b_f → b_f·λ^(1/β_f)
        c_f_ft → c_f_ft·μ^(−ρ), a_f → a_f·μ^(1/α_f),  b_f → b_f·μ^(1/β_f),
                              s_f_ft → s_f_ft + (c_f_ft·μ^(−ρ) − c_f_ft)·s_ft

    so c_ft, a_ft, b_ft, a_f, b_f, c_f_ft and s_f_ft cannot be determined from any data; only
    five combinations of these seven can. forgetlab fixes the gauge by requiring both brackets to equal 1 at
    the reference point (P0, N0) (geometric means of the data's P and N). In that gauge c_ft is the
    reducible fine-tuning loss at the reference point, and c_f_ft is close to the slope of the linear
    law when the two brackets move together (as in the paper, where Eq. 4 holds). `regauge` moves a
    parameter set along the symmetries, e.g. to compare with Table 1 at the paper's c_ft.

    Internal parameters (what the optimiser moves; 11 = 13 − 2 gauges). With x = P/P0, y = N/N0:

        G_ft = u·x^(−α_ft) + (1−u)·y^(−β_ft),   G_f = v·x^(−α_f) + (1−v)·y^(−β_f)   (both 1 at the reference)
        H = (G^ρ − 1)/S,   S = ρ·(share·α + (1−share)·β)
        L_ft = L_ft_ref + k_ft·H_ft,     L_f = L_f_ref − k_f·H_f

    H is the bracket term normalised by its log-slope at the reference, so that it stays finite
    (tending to a mix of ln x and ln y) as the exponents go to 0. Without that normalisation a
    law that wants logarithms drives c_ft and s_ft (and their L_f twins) to ±infinity along a
    flat valley that the optimiser crawls for thousands of steps. L_ft_ref and L_f_ref are the losses at
    (P0, N0); k_ft and k_f are minus the summed slopes in ln P and ln N there. They map to the
    paper's parameters as c_ft = k_ft/S_ft, s_ft = L_ft_ref − c_ft, d = k_f/S_f,
    c_f_ft = d/c_ft, s_f_ft = L_f_ref + d + c_f_ft·s_ft, a_ft = P0·u^(1/α_ft),
    b_ft = N0·(1−u)^(1/β_ft), a_f = P0·v^(1/α_f), b_f = N0·(1−v)^(1/β_f).
    L_ft_ref, k_ft, L_f_ref, k_f enter linearly.

    Bounds: k_ft ≥ 0 (L_ft must not rise with P and N), L_ft_ref ≥ 0 and L_f_ref ≥ 0 (losses);
    u, v in [0, 1] (a share of 0 or 1 means one resource drops out: flagged on_bound); exponents
    in [1e-4, 5]; ρ in [0.01, 30]; k_f free (forgetting that *falls* with P or N shows as
    k_f < 0, i.e. c_f_ft < 0). s_ft is not bounded (it is no longer a box parameter).
    """

    name = "paper-joint"
    summary = "paper's shifted power laws for L_ft and L_f sharing c_ft, s_ft, rho (reconstruction)"
    equation = (
        "L_ft = c_ft·[(a_ft/P)^α_ft + (b_ft/N)^β_ft]^ρ + s_ft;  "
        "L_f = −c_f_ft·(c_ft·[(a_f/P)^α_f + (b_f/N)^β_f]^ρ + s_ft) + s_f_ft"
    )
    grid = (
        "rho: 10 log-spaced values 0.25–16; per loss, share {0.05, 0.2, …, 0.95} × alpha 8 log-spaced "
        "0.005–1.5 × beta 8 log-spaced 0.005–1.5, linear coefficients solved by weighted least squares "
        "(w = 1/L²) at each; the 2 best per loss and rho are paired"
    )
    targets = ("L_ft", "L_f")
    inputs = ("P", "N")
    params = (
        ParamSpec("L_ft_ref", 0.0, INF, True, "L_ft at (P0, N0)"),
        ParamSpec("k_ft", 0.0, INF, True, "minus the summed slopes of L_ft in ln P and ln N at (P0, N0)"),
        ParamSpec("L_f_ref", 0.0, INF, True, "L_f at (P0, N0)"),
        ParamSpec("k_f", -INF, INF, True, "the summed slopes of L_f in ln P and ln N at (P0, N0)"),
        ParamSpec("u", 0.0, 1.0, False, "share of the P term in the L_ft bracket at (P0, N0)"),
        ParamSpec("alpha_ft", *EXPONENT_BOUNDS, False, "exponent of P in L_ft"),
        ParamSpec("beta_ft", *EXPONENT_BOUNDS, False, "exponent of N in L_ft"),
        ParamSpec("v", 0.0, 1.0, False, "share of the P term in the L_f bracket at (P0, N0)"),
        ParamSpec("alpha_f", *EXPONENT_BOUNDS, False, "exponent of P in L_f"),
        ParamSpec("beta_f", *EXPONENT_BOUNDS, False, "exponent of N in L_f"),
        ParamSpec("rho", *RHO_BOUNDS, False, "shared outer exponent"),
    )
    public_names = (
        "a_f", "a_ft", "b_f", "b_ft", "c_ft", "c_f_ft", "s_ft", "s_f_ft",
        "alpha_f", "alpha_ft", "beta_f", "beta_ft", "rho",
    )  # fmt: skip
    gauge_note = (
        "c_ft, a_ft, b_ft, a_f, b_f, c_f_ft and s_f_ft are fixed only up to two exact symmetries; "
        "they are reported in the gauge where both brackets equal 1 at the reference point (P0, N0)"
    )

    def n_params_for(self, target: str) -> int:
        return 6  # its two linear coefficients, its share and two exponents, and ρ

    @staticmethod
    def _block(share: float, alpha: float, beta: float, rho: float, design: Design, derivatives: bool = False):
        """H = (G^ρ − 1)/S for one bracket, and (if asked) dH/d(share, α, β, ρ).

        expm1/log1p keep H accurate when the exponents are tiny and G is close to 1.
        """
        ex = np.expm1(-alpha * design.lnx)  # x^(−α) − 1
        ey = np.expm1(-beta * design.lny)
        log_g = np.log1p(share * ex + (1.0 - share) * ey)
        slope = rho * (share * alpha + (1.0 - share) * beta)
        g_rho_m1 = np.expm1(rho * log_g)
        h = g_rho_m1 / slope
        if not derivatives:
            return h, None
        g = 1.0 + share * ex + (1.0 - share) * ey
        g_rho = g_rho_m1 + 1.0
        d_log_g = (
            ((ex + 1.0) - (ey + 1.0)) / g,
            -share * (ex + 1.0) * design.lnx / g,
            -(1.0 - share) * (ey + 1.0) * design.lny / g,
        )
        d_slope = (rho * (alpha - beta), rho * share, rho * (1.0 - share))
        d_h = [(g_rho * rho * dg - h * ds) / slope for dg, ds in zip(d_log_g, d_slope)]
        d_h.append((g_rho * log_g - h * (slope / rho)) / slope)
        return h, d_h

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        l_ft, k_ft, l_f, k_f, u, a_ft, b_ft, v, a_f, b_f, rho = theta
        h_ft, _ = self._block(u, a_ft, b_ft, rho, design)
        h_f, _ = self._block(v, a_f, b_f, rho, design)
        return np.stack([l_ft + k_ft * h_ft, l_f - k_f * h_f])

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        l_ft, k_ft, l_f, k_f, u, a_ft, b_ft, v, a_f, b_f, rho = theta
        jac = np.zeros((2, len(design), 11))
        for row, (scale, share, alpha, beta, first) in enumerate(((k_ft, u, a_ft, b_ft, 4), (-k_f, v, a_f, b_f, 7))):
            h, d_h = self._block(share, alpha, beta, rho, design, derivatives=True)
            jac[row, :, 2 * row] = 1.0
            jac[row, :, 2 * row + 1] = h if row == 0 else -h
            for offset in range(3):
                jac[row, :, first + offset] = scale * d_h[offset]
            jac[row, :, 10] = scale * d_h[3]
        return jac

    @staticmethod
    def _slope(share: float, alpha: float, beta: float, rho: float) -> float:
        return rho * (share * alpha + (1.0 - share) * beta)

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        l_ft, k_ft, l_f, k_f, u, a_ft, b_ft, v, a_f, b_f, rho = (float(x) for x in theta)
        c_ft = k_ft / self._slope(u, a_ft, b_ft, rho)
        d = k_f / self._slope(v, a_f, b_f, rho)
        s_ft = l_ft - c_ft
        c_f_ft = d / c_ft if c_ft > 0 else float("nan")
        return {
            "a_f": reference.P0 * _root(v, a_f),
            "a_ft": reference.P0 * _root(u, a_ft),
            "b_f": reference.N0 * _root(1.0 - v, b_f),
            "b_ft": reference.N0 * _root(1.0 - u, b_ft),
            "c_ft": c_ft,
            "c_f_ft": c_f_ft,
            "s_ft": s_ft,
            "s_f_ft": l_f + d + c_f_ft * s_ft,
            "alpha_f": a_f,
            "alpha_ft": a_ft,
            "beta_f": b_f,
            "beta_ft": b_ft,
            "rho": rho,
        }

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        p = public
        term = lambda a, size, origin: 0.0 if size <= 0 else float(np.exp(a * (np.log(size) - np.log(origin))))  # noqa: E731
        p_ft, n_ft = term(p["alpha_ft"], p["a_ft"], reference.P0), term(p["beta_ft"], p["b_ft"], reference.N0)
        p_f, n_f = term(p["alpha_f"], p["a_f"], reference.P0), term(p["beta_f"], p["b_f"], reference.N0)
        g, h = p_ft + n_ft, p_f + n_f
        rho = p["rho"]
        u, v = p_ft / g, p_f / h
        c_ft = p["c_ft"] * g**rho  # in the reference gauge
        d = p["c_f_ft"] * p["c_ft"] * h**rho
        m_f = p["s_f_ft"] - p["c_f_ft"] * p["s_ft"]
        return np.array(
            [
                p["s_ft"] + c_ft,
                c_ft * self._slope(u, p["alpha_ft"], p["beta_ft"], rho),
                m_f - d,
                d * self._slope(v, p["alpha_f"], p["beta_f"], rho),
                u,
                p["alpha_ft"],
                p["beta_ft"],
                v,
                p["alpha_f"],
                p["beta_f"],
                rho,
            ]
        )

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        """Grid over (u, α_ft, β_ft) and (v, α_f, β_f) for each ρ of RHO_GRID.

        Given ρ, the two blocks do not interact (c_ft, s_ft of L_f are absorbed by k_f, L_f_ref), so
        each block's grid is searched on its own and the best pairs per ρ become the starts:
        10 ρ × 448 points per block instead of 10 × 448².
        """
        share, alpha, beta = (g.ravel() for g in np.meshgrid(SHARE_GRID, EXPONENT_GRID, EXPONENT_GRID, indexing="ij"))
        ex = np.expm1(-alpha[:, None] * design.lnx[None, :])
        ey = np.expm1(-beta[:, None] * design.lny[None, :])
        log_g = np.log1p(share[:, None] * ex + (1.0 - share[:, None]) * ey)
        mix = (share * alpha + (1.0 - share) * beta)[:, None]
        blocks = []
        for row, sign in ((0, 1.0), (1, -1.0)):
            target = y[row]
            w = 1.0 / target**2
            per_rho = []
            for rho in RHO_GRID:
                h = np.expm1(rho * log_g) / (rho * mix)
                slope, intercept = weighted_line(h, target, w)
                if row == 0:  # k_ft ≥ 0
                    slope = np.maximum(slope, 0.0)
                intercept = np.maximum(intercept, 0.0)  # losses at the reference are ≥ 0
                prediction = slope[:, None] * h + intercept[:, None]
                cost = objective(prediction[:, None, :], np.log(target), delta)
                cost = np.where(np.isfinite(cost), cost, np.inf)
                best = np.argsort(cost)[:PER_BLOCK_CANDIDATES]
                per_rho.append([(cost[i], sign * slope[i], intercept[i], share[i], alpha[i], beta[i]) for i in best])
            blocks.append(per_rho)
        candidates = []
        for k, rho in enumerate(RHO_GRID):
            for ft in blocks[0][k]:
                for f in blocks[1][k]:
                    theta = [ft[2], ft[1], f[2], f[1], ft[3], ft[4], ft[5], f[3], f[4], f[5], rho]
                    candidates.append((ft[0] + f[0], theta))
        candidates.sort(key=lambda item: item[0])
        return np.array([theta for _, theta in candidates[:count]], dtype=float)


def _root(share: float, exponent: float) -> float:
    """share^(1/exponent), 0 for a zero share."""
    return float(np.exp(np.log(share) / exponent)) if share > 0 else 0.0


def regauge(public: dict[str, float], c_ft: Optional[float] = None, c_f_ft: Optional[float] = None) -> dict[str, float]:
    """Move paper-joint parameters along the two exact symmetries to the given c_ft and c_f_ft.

    Predictions do not change; use it to compare a fit with Table 1 (e.g. at the paper's c_ft
    and c_f_ft) or two fits with each other.
    """
    p = dict(public)
    rho = p["rho"]
    if c_ft is not None:
        lam = (p["c_ft"] / c_ft) ** (1.0 / rho)
        p["c_ft"] = c_ft
        for size, exponent in (("a_ft", "alpha_ft"), ("b_ft", "beta_ft"), ("a_f", "alpha_f"), ("b_f", "beta_f")):
            p[size] = p[size] * lam ** (1.0 / p[exponent])
    if c_f_ft is not None:
        mu = (p["c_f_ft"] / c_f_ft) ** (1.0 / rho)
        p["s_f_ft"] = p["s_f_ft"] + (c_f_ft - p["c_f_ft"]) * p["s_ft"]
        p["c_f_ft"] = c_f_ft
        for size, exponent in (("a_f", "alpha_f"), ("b_f", "beta_f")):
            p[size] = p[size] * mu ** (1.0 / p[exponent])
    return p
