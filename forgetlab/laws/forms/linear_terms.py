"""The linear law with a rank term, and with a rank and a steps term: the paper's claims as tests.

The paper says a run's rank (and its number of steps) only moves it *along* the L_f–L_ft line.
If so, at equal L_ft neither P nor N adds anything, and the coefficients below are 0:

    linear-rank        L_f = −c·L_ft + s + d·ln(P/P0)
    linear-rank-steps  L_f = −c·L_ft + s + d·ln(P/P0) + e·ln(N/N0)

d is the forgetting added per e-fold of P at equal fine-tuning loss (e the same for N); P0, N0
are the geometric means of the data's distinct P and N, so s is the intercept at P0 (and N0).
Their bootstrap intervals are the test: an interval excluding 0 contradicts "along the line".
Every parameter enters linearly; the start is the exact weighted least-squares fit.
"""

from __future__ import annotations

import numpy as np

from forgetlab.laws.forms.base import Design, LinearInParameters, ParamSpec, register_form

INF = np.inf


class _LinearWithTerms(LinearInParameters):
    """Shared algebra: L_f = −c·L_ft + s + Σ coefficient·(ln P/P0 | ln N/N0)."""

    targets = ("L_f",)
    grid = "none: the start is the exact weighted least-squares fit (w = 1/L_f²)"

    def _basis(self, design: Design) -> np.ndarray:
        columns = [-design.L_ft, np.ones_like(design.L_ft), design.lnx]
        if self.uses_N():
            columns.append(design.lny)
        return np.stack(columns, axis=-1)


@register_form
class LinearRankLaw(_LinearWithTerms):
    """L_f = −c·L_ft + s + d·ln(P/P0): does rank move forgetting off the L_f–L_ft line?"""

    name = "linear-rank"
    summary = "L_f = -c*L_ft + s + d*ln(P/P0) (rank term at equal L_ft)"
    equation = "L_f = −c·L_ft + s + d·ln(P/P0)"
    inputs = ("L_ft", "P")
    params = (
        ParamSpec("c", -INF, INF, True, "slope magnitude in L_ft"),
        ParamSpec("s", -INF, INF, True, "intercept at P = P0"),
        ParamSpec(
            "d", -INF, INF, True, "forgetting per e-fold of P at equal L_ft (0 if rank only moves a run along the line)"
        ),
    )
    public_names = ("c", "s", "d")


@register_form
class LinearRankStepsLaw(_LinearWithTerms):
    """L_f = −c·L_ft + s + d·ln(P/P0) + e·ln(N/N0): and do steps, beyond what they do to L_ft?"""

    name = "linear-rank-steps"
    summary = "L_f = -c*L_ft + s + d*ln(P/P0) + e*ln(N/N0)"
    equation = "L_f = −c·L_ft + s + d·ln(P/P0) + e·ln(N/N0)"
    inputs = ("L_ft", "P", "N")
    params = (
        ParamSpec("c", -INF, INF, True, "slope magnitude in L_ft"),
        ParamSpec("s", -INF, INF, True, "intercept at (P0, N0)"),
        ParamSpec("d", -INF, INF, True, "forgetting per e-fold of P at equal L_ft and N"),
        ParamSpec("e", -INF, INF, True, "forgetting per e-fold of N at equal L_ft and P"),
    )
    public_names = ("c", "s", "d", "e")
    # A learning rate and a step budget change how far a run has got at a step (L_ft) and how many
    # steps it took to get there (N); with a term in each, runs of several learning rates are what
    # tells N from L_ft (at one learning rate they move together). Pooling them assumes that is all
    # they change (docs/laws.md §1, "Pooling learning rates").
    pools = ("lr", "steps")
    pools_because = "it has terms in L_ft and N, through which a learning rate and a step budget act"
