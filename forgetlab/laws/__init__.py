"""The forgetting laws: fit them to points selected by SQL, with honest uncertainty; predict.

One module per concern, in the order a fit runs (docs/laws.md states every choice):

  workflow        `forgetlab fit` as a call: FitRequest -> select, plan, fit, record, compare
  selection       a fresh warehouse, runs that may share a law, the min_step cut named
  points          read and check the points (SQL through the warehouse's `run_query`)
  forms/          the form interface and registry (base) and one module per form
  objective       Huber loss on log residuals
  fitting         grid of starts (variable projection), robust polish, status
  resampling      the unit of the intervals: whole seeds (jackknife) where seeds are crossed with ranks
  bootstrap       refits of the replicates, as draws (bootstrap refits or jackknife pseudo-draws)
  coverage        do the intervals cover the truth? (simulated studies on a real design)
  equivalence     what an interval that contains 0 rules out
  bases           one base model per report
  intervals       the one interval helper (estimate ± t·bootstrap sd)
  validation      leave-one-rank-out, small-to-largest, later steps (held out in N)
  identifiability can the data determine each parameter?
  goodness        R², RMSE, MAE, AIC, BIC
  pipeline        all of the above for one law and one data set -> FitResult
  result          the FitResult record and its JSON
  figures, report PNGs and terminal tables (plotting, text: their shared helpers)
  store           MLflow run and DuckDB `fits` row; loading a stored fit
  predict         predictions and intervals from a stored fit
  compare         `fit --by`: groups of runs fitted apart and compared with a baseline group
  simulation      simulated studies with a known law (interval coverage)
  study_report    `forgetlab report DIR`: every results table and figure from a points file
  study_tables    its markdown tables

Names resolve lazily (PEP 562), so importing the package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BootstrapOptions": "forgetlab.laws.bootstrap",
    "FitOptions": "forgetlab.laws.fitting",
    "FitRequest": "forgetlab.laws.workflow",
    "FitResult": "forgetlab.laws.result",
    "Points": "forgetlab.laws.points",
    "QuerySource": "forgetlab.laws.pipeline",
    "StoredLaw": "forgetlab.laws.predict",
    "fit_points": "forgetlab.laws.pipeline",
    "get_law": "forgetlab.laws.forms",
    "law_names": "forgetlab.laws.forms",
    "load_fit": "forgetlab.laws.store",
    "load_points": "forgetlab.laws.points",
    "points_for": "forgetlab.laws.points",
    "regauge": "forgetlab.laws.forms.paper_joint",
    "run_fits": "forgetlab.laws.workflow",
    "run_report": "forgetlab.laws.study_report",
    "steps_to_forgetting": "forgetlab.laws.predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'forgetlab.laws' has no attribute {name!r}")
