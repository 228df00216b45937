"""What every law form provides, the data layout forms compute on, and the registry of forms.

A form is a parametric law with *internal* parameters (what the optimiser moves: well scaled,
bounded, each one identifiable in principle) and *public* parameters (what the paper or the user
calls them). Keeping the two apart lets the optimiser work on sane scales (P and N divided by a
reference point) while the output uses the paper's names.

Parameters are split into those entering the prediction linearly (solved exactly by weighted
least squares when searching the grid of starts: variable projection) and the nonlinear ones
(searched over the grid), because that makes the grid search cheap and the starts good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

FORGETTING_VARIANTS = ("hard", "soft", "kl", "data")
# The paper's L_f (~0.7 nats at N = 50 for a 7B chat model on WikiText) is below the entropy of
# such a model's predictions, which soft forgetting (H(p_base) + KL) can never go under: the
# paper's L_f is almost certainly the hard one. Soft and KL are reported beside it.
DEFAULT_VARIANT = "hard"


@dataclass(frozen=True)
class ParamSpec:
    """One internal parameter: its name, bounds, whether it enters linearly, and what it means."""

    name: str
    lower: float
    upper: float
    linear: bool
    doc: str


@dataclass(frozen=True)
class Reference:
    """The point (P0, N0) that P and N are divided by inside the forms.

    Geometric means of the distinct P and N values of the full data set: it keeps every power of
    P/P0 and N/N0 near 1 so no term overflows, and it fixes the gauge of `paper-joint` (see there).
    Bootstrap and validation refits keep the full data's reference, so their parameters are
    comparable.
    """

    P0: float
    N0: float

    @classmethod
    def of(cls, P: np.ndarray, N: np.ndarray) -> "Reference":
        return cls(_geometric_mean(P), _geometric_mean(N))


def _geometric_mean(values: np.ndarray) -> float:
    """Of the distinct values; 1 when some are missing or not positive (a form not using them)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        return 1.0
    return float(np.exp(np.mean(np.log(np.unique(values)))))


@dataclass(frozen=True, eq=False)
class Design:
    """The inputs of a form, precomputed once per data set (logs are the costly part)."""

    lnx: np.ndarray  # ln(P / P0)
    lny: np.ndarray  # ln(N / N0)
    L_ft: np.ndarray  # observed L_ft (the input of the linear law; NaN where not needed)

    @classmethod
    def build(cls, P: np.ndarray, N: np.ndarray, L_ft: Optional[np.ndarray], reference: Reference) -> "Design":
        P = np.asarray(P, dtype=float)
        N = np.asarray(N, dtype=float)
        ft = np.full(P.shape, np.nan) if L_ft is None else np.asarray(L_ft, dtype=float)
        # N = 0 (the base, step 0) is a valid point for a law in L_ft alone; its ln N is never
        # used (laws in N refuse N ≤ 0 before fitting), so it must not raise a warning either.
        with np.errstate(divide="ignore", invalid="ignore"):
            return cls(np.log(P / reference.P0), np.log(N / reference.N0), ft)

    def take(self, index: np.ndarray) -> "Design":
        return Design(self.lnx[index], self.lny[index], self.L_ft[index])

    def __len__(self) -> int:
        return len(self.lnx)


@dataclass(frozen=True)
class LawForm:
    """Base of the forms. Subclasses set the class attributes and implement the methods.

    `targets` are the losses the form predicts, in the order of the rows of `predict`;
    `inputs` the columns of the points it needs besides its targets.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    equation: ClassVar[str]
    targets: ClassVar[tuple[str, ...]]
    inputs: ClassVar[tuple[str, ...]]
    params: ClassVar[tuple[ParamSpec, ...]]
    public_names: ClassVar[tuple[str, ...]]
    grid: ClassVar[str]
    """The grid of starts over the nonlinear parameters, in words (recorded with every fit)."""
    gauge_note: ClassVar[Optional[str]] = None
    pools: ClassVar[tuple[str, ...]] = ()
    """Comparability columns (`comparability.COMPARABILITY`) whose runs this law may pool, because it
    has terms through which they act; `pools_because` says which. Empty: runs must agree on all."""
    pools_because: ClassVar[str] = ""

    # --- parameters -------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def lower(self) -> np.ndarray:
        return np.array([p.lower for p in self.params], dtype=float)

    @property
    def upper(self) -> np.ndarray:
        return np.array([p.upper for p in self.params], dtype=float)

    @property
    def linear_mask(self) -> np.ndarray:
        return np.array([p.linear for p in self.params])

    def n_params_for(self, target: str) -> int:
        """How many internal parameters move this target's prediction (for AIC/BIC)."""
        return len(self.params)

    def uses_P(self) -> bool:
        return "P" in self.inputs

    def uses_N(self) -> bool:
        return "N" in self.inputs

    # --- to be implemented ------------------------------------------------------------------
    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        """Predictions, shape (len(targets), n)."""
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        """d predict / d theta, shape (len(targets), n, len(params))."""
        raise NotImplementedError

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        raise NotImplementedError

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        raise NotImplementedError

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        """Up to `count` starting points (rows), best first, from a grid search with the
        linearly entering parameters solved exactly at every grid point."""
        raise NotImplementedError


def weighted_line(h: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of y ≈ slope·h + intercept, for many rows of h at once.

    h has shape (..., n); y and w shape (n,). Weights w = 1/y² make squared *relative* residuals,
    the first-order equivalent of the log residuals the objective uses.
    """
    sw = w.sum()
    swh = (h * w).sum(-1)
    swhh = (h * h * w).sum(-1)
    swy = (w * y).sum()
    swhy = (h * (w * y)).sum(-1)
    det = sw * swhh - swh**2
    safe = np.where(np.abs(det) > 1e-300, det, np.nan)
    slope = (sw * swhy - swh * swy) / safe
    intercept = (swy - slope * swh) / sw
    return slope, intercept


def weighted_least_squares(basis: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients of y ≈ basis @ coef by weighted least squares; basis has shape (n, k)."""
    root = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(basis * root, y * root[:, 0], rcond=None)
    return coef


_REGISTRY: dict[str, type[LawForm]] = {}


def register_form(cls: type[LawForm]) -> type[LawForm]:
    """Class decorator: make the form known by its name (the forms package imports every form)."""
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[LawForm]]:
    return dict(_REGISTRY)


class LinearInParameters(LawForm):
    """A law whose every parameter enters linearly: L_f = basis(design) · theta.

    Subclasses give `_basis`; prediction, Jacobian and the start (the exact weighted least-squares
    fit, w = 1/L_f²) follow from it, and the public parameters are theta itself.
    """

    def _basis(self, design: Design) -> np.ndarray:
        raise NotImplementedError

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        return (self._basis(design) @ np.asarray(theta, dtype=float))[None, :]

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        return self._basis(design)[None]

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.public_names, theta)}

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        return np.array([public[name] for name in self.public_names], dtype=float)

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        return weighted_least_squares(self._basis(design), y[0], 1.0 / y[0] ** 2)[None, :]
