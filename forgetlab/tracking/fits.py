"""What a fit run records about the data it was fitted to (laws/store.py logs it).

A fit reads its points from the warehouse, which holds runs exported from a tracking store. The
fit run records, as tags: the experiments the fitted runs are in (`forgetlab.source_experiments`),
the sweep parent when every fitted run has the same one (`forgetlab.sweep_parent`, and MLflow's
`mlflow.parentRunId`, so the fit is nested under the sweep), and a digest of the points
(`forgetlab.points_digest`; also the param `points.digest`), which changes whenever a value the
fit saw changes. The query text itself is the fit's `query.sql` artifact.

Runs the store does not hold (a warehouse exported from another store) link to nothing: their
experiments and parent are unknown, and the fit records how many of its runs were found.

The other way round, the sweep's run lists its fits (`link_fit_to_sweep`): a tag
`forgetlab.fit.<fit name>` = the fit's run id, and links to them in its description.
"""

from __future__ import annotations

import hashlib
import re
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
    experiments = sorted(
        client.get_experiment(experiment_id).name for experiment_id in {run.info.experiment_id for run in runs}
    )
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


# On a sweep's run, one tag per fit of its runs (`names.FIT_LINK_PREFIX`; latest fit of that name wins) and the
# links to them in its description (the run page's "Description"; the runs table's Description column).
FITS_HEADING = "**Fits of this sweep** (forgetlab):"


def _tag_safe(name: str) -> str:
    """A fit's run name as part of a tag key (MLflow allows letters, digits, `_ - . / :` and spaces)."""
    return re.sub(r"[^\w\-./: ]", "_", name)


def fits_note(note: str, links: Mapping[str, str]) -> str:
    """The run's description with its list of fits (name -> UI address) written anew, the user's text kept."""
    kept = note.split(FITS_HEADING)[0].rstrip()
    lines = [FITS_HEADING, *(f"- [{name}]({address})" for name, address in sorted(links.items()))]
    return "\n\n".join(filter(None, [kept, "\n".join(lines)]))


def link_fit_to_sweep(client, sweep_run_id: str, fit_run_id: str, fit_name: str) -> None:
    """Make a fit reachable from the sweep whose runs it fitted: a tag and a link on the sweep's run.

    The fit runs live in their own experiment, where MLflow's UI cannot nest them under the sweep;
    the sweep's description lists them, each a link to the fit's run page (`#/experiments/...`).
    """
    client.set_tag(sweep_run_id, names.FIT_LINK_PREFIX + _tag_safe(fit_name), fit_run_id)
    tags = client.get_run(sweep_run_id).data.tags
    links = {}
    for key, run_id in tags.items():
        if key.startswith(names.FIT_LINK_PREFIX):
            try:
                experiment_id = client.get_run(run_id).info.experiment_id
            except Exception:  # a fit run deleted for good: no link
                continue
            links[key[len(names.FIT_LINK_PREFIX) :]] = f"#/experiments/{experiment_id}/runs/{run_id}"
    client.set_tag(sweep_run_id, names.MLFLOW_RUN_NOTE, fits_note(tags.get(names.MLFLOW_RUN_NOTE, ""), links))
