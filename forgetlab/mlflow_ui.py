"""What MLflow's web UI reads to open on forgetlab's runs: the experiment kind and a saved view.

Measured in MLflow 3.17's UI code (its built bundle; the TypeScript agrees):
- The mode (GenAI or model training) comes from the address (`?workflowType=`) or else from the
  browser's local storage (`mlflow.workflowType_v1`), which starts as GenAI; the experiment kind
  tag is not read for the mode. `forgetlab ui` serves MLflow with forgetlab's app plugin
  (forgetlab/ui_app.py), which makes a fresh browser start in training mode.
- A saved view is the experiment tag `mlflow.sharedViewState.<id>` holding an envelope
  `{"name", "createdAt", "updatedAt", "state"}`, `state` the view as JSON text: the runs table's
  search facets (sort, filter) and its UI state (columns, charts, chart sections, which runs show).
  The UI lists it under "Views" and opens it from `#/experiments/<id>/runs?viewStateShareKey=<id>`;
  the plugin also seeds it as a fresh browser's own state of each experiment that carries it.
  A view never carries which parent rows are expanded (the UI drops `runsExpanded`), so the view
  sorts by a metric: the table then lists a sweep's points flat instead of under their parent.
Kept free of MLflow imports: tracking and the CLI import it cheaply.
"""

from __future__ import annotations

import json
from typing import Any

import forgetlab.tracking.names as names

# What the UI's own kind selector writes for "Machine learning" (the other choice is GenAI).
TRAINING_KIND = "custom_model_development"
# Kinds forgetlab itself set before (the UI's selector does not offer them): replaced, not kept as a user's choice.
FORMER_TRAINING_KINDS = frozenset({"finetuning"})
VIEW_KEY = "forgetlab-runs"
VIEW_NAME = "forgetlab: forgetting"
VIEW_CREATED_MS = 1_767_225_600_000  # fixed (2026-01-01), so an unchanged view is never rewritten
VIEW_TAG = names.MLFLOW_SHARED_VIEW_PREFIX + VIEW_KEY

# What a forgetting study compares, by the UI's column keys (`<type>.\`<name>\``). Metrics show
# their latest value: the end of the run. One view serves the runs' and the fits' experiment: a
# column of a key no run in the table has is not drawn.
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("params", "lora.rank"),
    ("params", "seed"),
    ("params", "P"),
    ("params", "model.name"),
    ("params", "data.name"),
    ("params", "train.steps"),
    ("metrics", names.FT_LOSS),
    ("metrics", names.FORGET_HARD),
    ("metrics", names.FORGET_SOFT),
    ("metrics", names.FORGET_KL),
)
# Fit runs (laws/store.py): what was fitted, how well, and the linear laws' coefficients with their
# bootstrap intervals (every law's fitted parameters are metrics `fit/<name>`, `.low`, `.high`).
FIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tags", names.DATASET),
    ("tags", names.LAW),
    ("tags", names.VARIANT),
    ("tags", names.FIT_STATUS),
    ("metrics", "L_f.r2"),
    ("metrics", "L_f.rmse"),
    *(("metrics", f"fit/{name}{bound}") for name in ("c", "s", "d") for bound in ("", ".low", ".high")),
)
STUDY_COLUMNS = RUN_COLUMNS + FIT_COLUMNS
# The table's order: final hard forgetting, least first (a sort other than by time also lists a
# sweep's points flat, visible without expanding their parent).
ORDER_BY = ("metrics", names.FORGET_HARD)

# Chart sections: forgetlab's first, then MLflow's own two, model metrics before system metrics
# (the UI puts each metric without a chart of its own into the section its name says).
FORGETTING_SECTION = "forgetlab-forgetting"
MODEL_SECTION = "forgetlab-model-metrics"
SYSTEM_SECTION = "forgetlab-system-metrics"


def column_key(kind: str, name: str) -> str:
    """The UI's canonical column key, e.g. params.`lora.rank`."""
    return f"{kind}.`{name}`"


def _section(uuid: str, name: str, generated: bool) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": name,
        "display": True,
        "isReordered": False,
        "deleted": False,
        "isGenerated": generated,
    }


def _chart(uuid: str, chart_type: str, title: str, section: str = FORGETTING_SECTION, **config: Any) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "type": chart_type,
        "displayName": title,
        "metricSectionId": section,
        "isGenerated": False,
        "deleted": False,
        "runsCountToCompare": 100,
        **config,
    }


def _line(uuid: str, title: str, metric: str, x_metric: str = "") -> dict[str, Any]:
    """A line per run: `metric` against the step, or against another metric of the same run."""
    x_axis = (
        {"xAxisKey": "metric", "selectedXAxisMetricKey": x_metric, "useGlobalXaxisKey": False}
        if x_metric
        else {"xAxisKey": "step", "selectedXAxisMetricKey": "", "useGlobalXaxisKey": True}
    )
    return _chart(
        uuid,
        "LINE",
        title,
        metricKey=metric,
        selectedMetricKeys=[metric],
        lineSmoothness=0,
        scaleType="linear",
        xAxisScaleType="linear",
        yAxisKey="metric",
        yAxisExpressions=[],
        ignoreOutliers=False,
        useGlobalLineSmoothing=True,
        range={},
        **x_axis,
    )


def forgetting_charts() -> list[dict[str, Any]]:
    """The chart set of a forgetting study: each loss on its own axis, forgetting against L_ft, forgetting by rank."""
    return [
        _line("forgetlab-ft-loss", "L_ft (ft_loss) vs step", names.FT_LOSS),
        _line("forgetlab-forget-hard", "L_f (forget_hard) vs step", names.FORGET_HARD),
        _line(
            "forgetlab-forget-vs-ft",
            "L_f (forget_hard) vs L_ft (ft_loss), per run",
            names.FORGET_HARD,
            x_metric=names.FT_LOSS,
        ),
        _chart(
            "forgetlab-final-by-rank",
            "SCATTER",
            "final L_f (forget_hard) by LoRA rank",
            xaxis={"key": "lora.rank", "type": "PARAM"},
            yaxis={"key": names.FORGET_HARD, "type": "METRIC"},
        ),
        _chart(
            "forgetlab-final-vs-ft",
            "SCATTER",
            "final L_f vs final L_ft",
            xaxis={"key": names.FT_LOSS, "type": "METRIC"},
            yaxis={"key": names.FORGET_HARD, "type": "METRIC"},
        ),
        _chart(
            "forgetlab-parallel",
            "PARALLEL",
            "rank, P -> L_ft, L_f",
            selectedParams=["lora.rank", "P"],
            selectedMetrics=[names.FT_LOSS, names.FORGET_HARD],
            showAllRuns=True,
        ),
        # The base's held-out loss is one number for every run (in the table): no chart of its own.
        {
            **_chart(
                "forgetlab-base-heldout",
                "BAR",
                names.BASE_HELDOUT_LOSS,
                MODEL_SECTION,
                metricKey=names.BASE_HELDOUT_LOSS,
            ),
            "deleted": True,
        },
    ]


def view_state() -> dict[str, Any]:
    """forgetlab's view: the runs table's search facets and UI state, as MLflow 3.17's UI stores them."""
    return {
        "orderByKey": column_key(*ORDER_BY),
        "orderByAsc": True,
        "selectedColumns": [column_key(kind, name) for kind, name in STUDY_COLUMNS],
        "runsHiddenMode": "SHOW_ALL",  # MLflow's default charts only the first 10 runs
        "compareRunCharts": forgetting_charts(),
        "compareRunSections": [
            _section(FORGETTING_SECTION, "Forgetting (forgetlab)", generated=False),
            _section(MODEL_SECTION, "Model metrics", generated=True),
            _section(SYSTEM_SECTION, "System metrics", generated=True),
        ],
        "isAccordionReordered": False,
        "hideEmptyCharts": True,
    }


def shared_view_state() -> str:
    """The saved view's tag value: the envelope the UI's "Views" list and share links read."""
    state = json.dumps(view_state(), sort_keys=True)
    return json.dumps(
        {"name": VIEW_NAME, "createdAt": VIEW_CREATED_MS, "updatedAt": VIEW_CREATED_MS, "state": state}, sort_keys=True
    )


def view_state_of(tag_value: str) -> str | None:
    """The state text inside a saved view's tag value; None when it is not an envelope the UI lists."""
    try:
        envelope = json.loads(tag_value)
    except ValueError:
        return None
    if (
        not isinstance(envelope, dict)
        or not isinstance(envelope.get("state"), str)
        or not isinstance(envelope.get("name"), str)
    ):
        return None
    return envelope["state"]


def training_view_tags() -> dict[str, str]:
    """The experiment tags that make the UI open on forgetlab's runs and columns."""
    return {names.MLFLOW_EXPERIMENT_KIND: TRAINING_KIND, VIEW_TAG: shared_view_state()}


def missing_view_tags(existing: dict[str, str]) -> dict[str, str]:
    """Tags to set on an experiment: a kind only where none (or forgetlab's former one) is set, our view when stale.

    A kind someone chose in the UI stays; so does every other saved view.
    """
    wanted = training_view_tags()
    missing = {}
    if existing.get(names.MLFLOW_EXPERIMENT_KIND, "") in FORMER_TRAINING_KINDS | {""}:
        missing[names.MLFLOW_EXPERIMENT_KIND] = wanted[names.MLFLOW_EXPERIMENT_KIND]
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
    """The address of an experiment's runs table in the training view (a fresh browser gets forgetlab's view there)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
