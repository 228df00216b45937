"""What a fit run records about the data it was fitted to (laws/store.py logs it).

A fit reads its points from the warehouse, which holds runs exported from a tracking store. The
fit run records, as tags: the experiments the fitted runs are in (`forgetlab.source_experiments`),
the sweep parent when every fitted run has the same one (`forgetlab.sweep_parent`, and MLflow's
`mlflow.parentRunId`, so the fit is nested under the sweep), and a digest of the points
(`forgetlab.points_digest`; also the param `points.digest`), which changes whenever a value the
fit saw changes. The query text itself is the fit's `query.sql` artifact.

Runs the store does not hold (a warehouse exported from another store) link to nothing: their
experiments and parent are unknown, and the fit records how many of its runs were found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

import forgetlab.tracking.names as names


@dataclass(frozen=True)
class FitRunContext:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    parent_run_id: Optional[str] = None  # the sweep the fit is nested under; None: not nested


def points_digest(columns: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the points: every column, by name, rows in their order; floats exactly (repr)."""
    digest = hashlib.sha256()
    for name in sorted(columns):
        values = columns[name]
        digest.update(f"\x00{name}\x01".encode())
        if values is None or isinstance(values, str):
            digest.update(repr(values).encode())
            continue
        for value in values:
            digest.update(repr(value.item() if hasattr(value, "item") else value).encode() + b"\x02")
    return digest.hexdigest()[:16]


def _source_runs(client, run_ids: Iterable[str]) -> list:
    from mlflow.exceptions import MlflowException

    found = []
    for run_id in sorted(set(map(str, run_ids))):
        try:
            found.append(client.get_run(run_id))
        except MlflowException:
            continue  # not in this store: the warehouse came from another one
    return found


def fit_run_context(client, run_ids: Iterable[str], columns: Mapping[str, Any]) -> FitRunContext:
    """The tags and params linking a fit to the runs it fitted (`run_ids`) and its points (`columns`)."""
    run_ids = list(map(str, run_ids))
    runs = _source_runs(client, run_ids)
    experiments = sorted(client.get_experiment(experiment_id).name for experiment_id in {run.info.experiment_id for run in runs})
    parents = {run.data.tags.get(names.MLFLOW_PARENT_RUN_ID) for run in runs}
    parent = parents.pop() if len(parents) == 1 and len(runs) == len(set(run_ids)) else None
    digest = points_digest(columns)
    tags = {names.POINTS_DIGEST: digest}
    if experiments:
        tags[names.SOURCE_EXPERIMENTS] = ",".join(experiments)
    if parent:
        tags[names.SWEEP_PARENT] = parent
        tags[names.MLFLOW_PARENT_RUN_ID] = parent
    params = {"points.digest": digest, "points.runs": len(set(run_ids)), "points.runs_in_store": len(runs)}
    return FitRunContext(tags, params, parent)
