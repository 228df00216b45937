"""`linear`: the inverse linear law between forgetting and fine-tuning loss (paper Eq. 4)."""

from __future__ import annotations

import numpy as np

from forgetlab.laws.forms.base import Design, LawForm, ParamSpec, Reference, register_form, weighted_line

INF = np.inf


@register_form
class LinearLaw(LawForm):
    """L_f = −c · L_ft + s   (Eq. 4; the paper writes c_{f,ft} and s_{f,ft}).

    Parameters:
      c  slope magnitude: nats of forgetting gained per nat of fine-tuning loss lost; unbounded
         (a negative c would mean forgetting falls as L_ft falls, which the fit should show, not
         hide).
      s  intercept: the forgetting extrapolated to L_ft = 0; unbounded.

    Both enter linearly, so the start is the exact weighted least-squares line and the Huber
    polish only moves it when outliers exist. It needs the observed L_ft of every point and
    predicts L_f only from it: no P or N.
    """

    name = "linear"
    summary = "L_f = -c*L_ft + s (paper Eq. 4)"
    equation = "L_f = −c·L_ft + s"
    grid = "none: the start is the exact weighted least-squares line (w = 1/L_f²)"
    targets = ("L_f",)
    inputs = ("L_ft",)
    params = (
        ParamSpec("c", -INF, INF, True, "slope magnitude (c_{f,ft})"),
        ParamSpec("s", -INF, INF, True, "intercept (s_{f,ft})"),
    )
    public_names = ("c", "s")

    def predict(self, theta: np.ndarray, design: Design) -> np.ndarray:
        c, s = theta
        return (-c * design.L_ft + s)[None, :]

    def jacobian(self, theta: np.ndarray, design: Design) -> np.ndarray:
        return np.stack([-design.L_ft, np.ones_like(design.L_ft)], axis=-1)[None]

    def to_public(self, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        return {"c": float(theta[0]), "s": float(theta[1])}

    def from_public(self, public: dict[str, float], reference: Reference) -> np.ndarray:
        return np.array([public["c"], public["s"]], dtype=float)

    def starts(self, design: Design, y: np.ndarray, delta: float, count: int) -> np.ndarray:
        target = y[0]
        slope, intercept = weighted_line(design.L_ft[None, :], target, 1.0 / target**2)
        return np.array([[-slope[0], intercept[0]]])
