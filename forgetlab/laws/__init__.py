"""The forgetting laws: fit them to points selected by SQL, with honest uncertainty; predict.

One module per concern, in the order a fit runs (docs/laws.md states every choice):

  points          read and check the points (SQL through the warehouse's `run_query`)
  forms           the form interface and registry; linear, paper_joint, power_additive the forms
  objective       Huber loss on log residuals
  fitting         grid of starts (variable projection), robust polish, status
  bootstrap       resampling whole runs, percentile intervals
  validation      leave-one-rank-out and small-to-largest held-out error
  identifiability can the data determine each parameter?
  goodness        R², RMSE, MAE, AIC, BIC
  pipeline        all of the above for one law and one data set -> FitResult
  result          the FitResult record and its JSON
  figures, report PNGs and terminal tables
  store           MLflow run and DuckDB `fits` row; loading a stored fit
  predict         predictions and intervals from a stored fit
  compare         `fit --by`: groups of runs fitted apart and compared with a baseline group

Names resolve lazily (PEP 562), so importing the package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BootstrapOptions": "forgetlab.laws.bootstrap",
    "FitOptions": "forgetlab.laws.fitting",
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
    "steps_to_forgetting": "forgetlab.laws.predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'forgetlab.laws' has no attribute {name!r}")
