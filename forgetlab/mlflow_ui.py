"""What MLflow's web UI reads to open on forgetlab's runs: the experiment kind and a default view.

MLflow 3.17's UI opens an experiment without the tag `mlflow.experimentKind` in its GenAI view
(traces, "No data"); any model-training kind (`finetuning`, `custom_model_development`, ...)
opens the runs table instead. The runs table's visible columns live in the browser's local
storage, not on the server; the only server-side way to ship a default is a shared view: the
experiment tag `mlflow.sharedViewState.<key>` holding the UI state as JSON, loaded when the
address carries `?viewStateShareKey=<key>` (what the UI's "Share" button writes). `forgetlab ui`
prints that address. Kept free of MLflow imports: tracking.py and the CLI import it cheaply.
"""

from __future__ import annotations

import json
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
# One of the kinds the 3.17 UI maps to its "Model training" view (its ExperimentKind enum).
TRAINING_KIND = "finetuning"
VIEW_KEY = "forgetlab-runs"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_TAG = SHARED_VIEW_TAG_PREFIX + VIEW_KEY

# What a forgetting study compares, by the UI's column keys (`<type>.\`<name>\``). Metrics show
# their latest value: the end of the run.
STUDY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("params", "data.name"),
    ("params", "model.name"),
    ("params", "lora.rank"),
    ("params", "P"),
    ("params", "train.steps"),
    ("metrics", "ft_loss"),
    ("metrics", "forget_soft"),
    ("metrics", "forget_hard"),
)


def column_key(kind: str, name: str) -> str:
    """The UI's canonical column key, e.g. params.`lora.rank`."""
    return f"{kind}.`{name}`"


def shared_view_state() -> str:
    """The UI state of forgetlab's default view, as the UI's shared-view loader parses it."""
    state: dict[str, Any] = {"selectedColumns": [column_key(kind, name) for kind, name in STUDY_COLUMNS]}
    return json.dumps(state, sort_keys=True)


def training_view_tags() -> dict[str, str]:
    """The experiment tags that make the UI open on forgetlab's runs and columns."""
    return {EXPERIMENT_KIND_TAG: TRAINING_KIND, VIEW_TAG: shared_view_state()}


def missing_view_tags(existing: dict[str, str]) -> dict[str, str]:
    """Tags to set on an experiment: a kind only where none is set (a user's choice stays), our view when stale."""
    wanted = training_view_tags()
    missing = {}
    if not existing.get(EXPERIMENT_KIND_TAG):
        missing[EXPERIMENT_KIND_TAG] = wanted[EXPERIMENT_KIND_TAG]
    if existing.get(VIEW_TAG) != wanted[VIEW_TAG]:
        missing[VIEW_TAG] = wanted[VIEW_TAG]
    return missing


def mark_training_experiment(client: Any, experiment_id: str) -> str:
    """Tag an experiment forgetlab logs to as a model-training one; return its id (for one-line callers).

    Which tags is `missing_view_tags`; setting them is `settle_experiment_tags`, safe when many
    processes mark one experiment at once (a tag inserted by two of them conflicts; the loser reads again).
    """
    from forgetlab.tracking.store import settle_experiment_tags

    settle_experiment_tags(client, experiment_id, missing_view_tags)
    return experiment_id


def runs_address(base_url: str, experiment_id: str) -> str:
    """The address of an experiment's runs table in the training view, with forgetlab's columns."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
