"""forgetlab's MLflow app plugin: MLflow's own server, opening on model training and forgetlab's view.

`forgetlab ui` runs `mlflow server --app-name forgetlab` (the entry point `mlflow.app: forgetlab`
in pyproject.toml names `create_app`). The plugin changes three things and leaves every MLflow
route as it is:

- The page (index.html) loads `forgetlab-ui.js` before MLflow's code. That script writes what a
  fresh browser lacks, and only what it lacks: the UI mode "model training" (local storage
  `mlflow.workflowType_v1`, which MLflow starts as GenAI whatever the experiment's kind), the
  assistant panel's first automatic opening as done (it covered a third of the runs), and,
  for each experiment carrying forgetlab's saved view, that view as the browser's state of the
  experiment's runs page. So every way in (home, experiments list, a run's page, compare and
  metric pages) lands in training mode, and the runs table opens with forgetlab's columns and
  charts. A choice the user made in the UI is kept: nothing is written over it.
- `users/current` answers "no user" (`{}`): the UI asks it on every page, and without MLflow's
  basic-auth plugin it was a 404 in the browser console.
- `get-history-bulk-interval` without a metric answers "no points": the UI's add-chart dialog
  asks with an empty `metric_key` before one is chosen, which MLflow refuses with a 400.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from forgetlab.mlflow_ui import VIEW_TAG, view_state_of

SCRIPT_ROUTE = "/forgetlab-ui.js"
WORKFLOW_TYPE_KEY = "mlflow.workflowType_v1"  # MLflow's useLocalStorage key: `${key}_v${version}`
TRAINING_WORKFLOW = "machine_learning"
# MLflow opens its assistant panel (a third of the window) once per browser on a local server;
# marked as done, the runs get the width and the assistant stays one click away.
ASSISTANT_OPENED_KEY = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"
# MLflow's LocalStorageUtils: "MLflowLocalStorage-<version>-<component>-<scope>-ReactComponentState",
# the experiment page's scope being the JSON of its sorted experiment ids.
EXPERIMENT_STATE_KEY = "MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"
CURRENT_USER_ROUTE = "/ajax-api/2.0/mlflow/users/current"
BULK_INTERVAL_SUFFIX = "/mlflow/metrics/get-history-bulk-interval"

_logger = logging.getLogger(__name__)


def seed_script(views: dict[str, str]) -> str:
    """The script that gives a fresh browser training mode and, per experiment id, forgetlab's view state."""
    keys = {
        EXPERIMENT_STATE_KEY.format(ids=json.dumps([experiment_id])): state
        for experiment_id, state in sorted(views.items())
    }
    keys.update({WORKFLOW_TYPE_KEY: json.dumps(TRAINING_WORKFLOW), ASSISTANT_OPENED_KEY: "true"})
    return (
        "(function () {\n"
        "  try {\n"
        "    var storage = window.localStorage;\n"
        f"    var wanted = {json.dumps(keys, sort_keys=True)};\n"
        "    Object.keys(wanted).forEach(function (key) {\n"
        "      if (storage.getItem(key) === null) storage.setItem(key, wanted[key]);\n"
        "    });\n"
        "  } catch (error) {}  // no local storage (a private window): MLflow's defaults\n"
        "})();\n"
    )


def with_script(index_html: str, script_src: str) -> str:
    """index.html with the seed script ahead of MLflow's deferred bundle (it runs first)."""
    tag = f'<script src="{script_src}"></script>'
    return (
        index_html.replace("<script", tag + "<script", 1)
        if "<script" in index_html
        else index_html.replace("</head>", tag + "</head>", 1)
    )


def experiment_views(store: Any) -> dict[str, str]:
    """Experiment id -> forgetlab's view state, for every active experiment carrying the view."""
    views, token = {}, None
    while True:
        page = store.search_experiments(max_results=1000, page_token=token)
        for experiment in page:
            state = view_state_of((experiment.tags or {}).get(VIEW_TAG, ""))
            if state is not None:
                views[str(experiment.experiment_id)] = state
        token = page.token
        if not token:
            return views


def install(flask_app: Any) -> None:
    """Add the seed script, the answers above and the page that loads the script, to MLflow's Flask app."""
    from flask import Response, jsonify, request
    from mlflow.server import handlers

    prefix = os.environ.get(handlers.STATIC_PREFIX_ENV_VAR, "").rstrip("/")
    index = Path(flask_app.static_folder) / "index.html"

    def page():
        if not index.exists():  # a source install of MLflow without its built UI: MLflow's own message
            return mlflow_page()
        html = with_script(index.read_text(), SCRIPT_ROUTE.lstrip("/"))
        return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})

    def script():
        try:
            views = experiment_views(handlers._get_tracking_store())
        except Exception:  # the mode still switches; the views wait for a store that answers
            _logger.warning("forgetlab-ui.js: could not read the experiments' views", exc_info=True)
            views = {}
        return Response(seed_script(views), mimetype="text/javascript", headers={"Cache-Control": "no-store"})

    def current_user():
        return jsonify({})

    mlflow_page = flask_app.view_functions["serve"]
    flask_app.view_functions["serve"] = page
    flask_app.add_url_rule(prefix + SCRIPT_ROUTE, "forgetlab_ui_script", script)
    flask_app.add_url_rule(prefix + CURRENT_USER_ROUTE, "forgetlab_current_user", current_user)
    for endpoint in {
        rule.endpoint for rule in flask_app.url_map.iter_rules() if rule.rule.endswith(BULK_INTERVAL_SUFFIX)
    }:
        flask_app.view_functions[endpoint] = _metric_required(flask_app.view_functions[endpoint], request, jsonify)


def _metric_required(view, request, jsonify):
    def bulk_interval(*args, **kwargs):
        if not request.args.get("metric_key"):
            return jsonify({"metrics": []})
        return view(*args, **kwargs)

    return bulk_interval


def create_app():
    """The entry point `mlflow server --app-name forgetlab` loads (as a factory), as MLflow's basic-auth app does.

    Under uvicorn (MLflow's default, and `forgetlab ui`'s) the app is MLflow's FastAPI app, which
    serves the Flask app below its own routes; gunicorn and waitress serve the Flask app itself.
    """
    from mlflow.server import app as flask_app

    install(flask_app)
    if os.environ.get("_MLFLOW_SGI_NAME", "uvicorn") != "uvicorn":
        return flask_app
    from mlflow.server.fastapi_app import app as fastapi_app

    return fastapi_app
