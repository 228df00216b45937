"""The forgetting laws: fit them to points selected by SQL, with honest uncertainty; predict.

One module per concern. The commands are front-ends over one engine:

  fit_frontend    `forgetlab fit` as a call: FitRequest -> select, plan FitJobs, run them into the sinks
  report_frontend `forgetlab report DIR` as a call: ReportRequest -> read the points file, plan, run, write
  engine          the FitJob, and the one runner of jobs (in order or in N processes) into the sinks
  sinks           where results go: figures, the fit store, the terminal, --by comparison, JSON, results.md
  comparability   runs that may share a law, and the policy for those that may not (refuse or split)

One fit, in the order it runs (docs/laws.md states every choice):

  selection       a fresh warehouse, the min_step cut named
  points          read and check the points (SQL through the warehouse's `run_query`)
  forms/          the form interface and registry (base) and one module per form
  objective       Huber loss on log residuals
  fitting         grid of starts (variable projection), robust polish, status
  resampling      the unit of the intervals: whole seeds (jackknife) where seeds are crossed with ranks
  bootstrap       refits of the replicates, as draws (bootstrap refits or jackknife pseudo-draws)
  intervals       the one interval helper (estimate ± t·bootstrap sd)
  validation      leave-one-rank-out, small-to-largest, later steps (held out in N)
  identifiability can the data determine each parameter?
  goodness        R², RMSE, MAE, AIC, BIC
  complete_fit    all of the above for one law and one set of points -> FitResult
  result          the FitResult record and its JSON

What is made of fits:

  terminal        the terminal tables: a fit, the laws compared, the --by groups compared, a prediction
  report_markdown results.md: its header and tables
  figures         a fit's PNGs (plotting, text: the helpers shared by figures and tables)
  store           MLflow run and DuckDB `fits` row; loading a stored fit
  predict         predictions and intervals from a stored fit
  compare         `fit --by`: groups of runs fitted apart and compared with a baseline group
  equivalence     what an interval that contains 0 rules out
  bases           one base model per report
  coverage        do the intervals cover the truth? (simulated studies on a real design)
  simulation      simulated studies with a known law (interval coverage)

Names resolve lazily (PEP 562), so importing the package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BootstrapOptions": "forgetlab.laws.bootstrap",
    "FitOptions": "forgetlab.laws.fitting",
    "FitRequest": "forgetlab.laws.fit_frontend",
    "FitResult": "forgetlab.laws.result",
    "Points": "forgetlab.laws.points",
    "QuerySource": "forgetlab.laws.complete_fit",
    "StoredLaw": "forgetlab.laws.predict",
    "fit_points": "forgetlab.laws.complete_fit",
    "get_law": "forgetlab.laws.forms",
    "law_names": "forgetlab.laws.forms",
    "load_fit": "forgetlab.laws.store",
    "load_points": "forgetlab.laws.points",
    "points_for": "forgetlab.laws.points",
    "regauge": "forgetlab.laws.forms.paper_joint",
    "run_fits": "forgetlab.laws.fit_frontend",
    "run_report": "forgetlab.laws.report_frontend",
    "steps_to_forgetting": "forgetlab.laws.predict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'forgetlab.laws' has no attribute {name!r}")
