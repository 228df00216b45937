"""`forgetlab ui`: one-line errors for a bad or busy port, and what the MLflow UI reads from a sweep's store.

The UI reads everything through MLflow's REST API; so does the last test: the experiment's kind
and saved view, and the sweep's children nested under their parent run. What a browser makes of
it is tests/test_ui_browser.py.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import invoke
from mlflow_server import free_port

from forgetlab.mlflow_ui import TRAINING_KIND, VIEW_KEY, VIEW_NAME, VIEW_TAG, mark_training_experiment, view_state_of
from forgetlab.tracking.names import MLFLOW_EXPERIMENT_KIND as EXPERIMENT_KIND_TAG

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(workdir):
    (workdir / "mlruns").mkdir()
    (workdir / "mlruns" / "mlflow.db").touch()
    return workdir


def test_port_out_of_range_is_one_line_and_fails(store, capsys, monkeypatch):
    code, out, err = invoke(["ui", "--port", "99999"], capsys, monkeypatch)
    assert code == 2
    assert "--port" in err and "99999 is not in the range 1<=x<=65535" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_port_in_use_is_one_line_and_fails(store, capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = invoke(["ui", "--port", str(port)], capsys, monkeypatch)
    assert code == 2
    assert err.strip() == f"error: port {port} on 127.0.0.1 is in use; stop what uses it or pick another with --port"
    assert "starting" not in out  # no server was started


def test_an_experiment_is_marked_for_training_once_and_a_users_kind_is_kept(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    plain = client.create_experiment("old")
    chosen = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    ours_before = client.create_experiment(
        "older", tags={EXPERIMENT_KIND_TAG: "finetuning", VIEW_TAG: '{"selectedColumns": []}'}
    )
    for experiment_id in (plain, chosen, ours_before, plain):
        assert mark_training_experiment(client, experiment_id) == experiment_id
    # MLflow 3.17's kind selector writes custom_model_development for "Machine learning"; forgetlab's
    # former `finetuning` is replaced, a kind chosen in the UI is kept.
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND == "custom_model_development"
    assert client.get_experiment(ours_before).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"
    # The view is a saved view as the UI lists it: an envelope with a name and the state as JSON text.
    for experiment_id in (plain, ours_before):
        envelope = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG])
        assert envelope["name"] == VIEW_NAME and isinstance(envelope["createdAt"], int)
        state = json.loads(view_state_of(client.get_experiment(experiment_id).tags[VIEW_TAG]))
        assert {
            "params.`lora.rank`",
            "params.`seed`",
            "params.`data.name`",
            "params.`P`",
            "metrics.`forget_hard`",
            "metrics.`ft_loss`",
            "metrics.`fit/c`",
        } <= set(state["selectedColumns"])
        # Sorted by a metric, so a sweep's points are listed, not folded under the sweep's row; every run charted.
        assert state["orderByKey"] == "metrics.`forget_hard`" and state["runsHiddenMode"] == "SHOW_ALL"
        charts = {chart["uuid"]: chart for chart in state["compareRunCharts"]}
        assert (
            charts["forgetlab-ft-loss"]["metricKey"] == "ft_loss"
            and charts["forgetlab-forget-hard"]["metricKey"] == "forget_hard"
        )
        assert charts["forgetlab-forget-vs-ft"]["selectedXAxisMetricKey"] == "ft_loss"
        assert charts["forgetlab-final-by-rank"]["xaxis"] == {"key": "lora.rank", "type": "PARAM"}
        assert [section["name"] for section in state["compareRunSections"]] == [
            "Forgetting (forgetlab)",
            "Model metrics",
            "System metrics",
        ]
    assert view_state_of('{"selectedColumns": []}') is None  # the former raw state: not a view the UI lists


def test_the_page_runs_forgetlabs_script_before_mlflows_and_the_script_only_fills_what_is_missing():
    from forgetlab.ui_app import seed_script, with_script

    page = '<html><head><script defer="defer" src="static-files/static/js/main.js"></script></head></html>'
    assert with_script(page, "forgetlab-ui.js") == (
        '<html><head><script src="forgetlab-ui.js"></script><script defer="defer" src="static-files/static/js/main.js"></script></head></html>'
    )
    script = seed_script({"7": '{"orderByKey": "metrics.`forget_hard`"}'})
    assert "if (storage.getItem(key) === null) storage.setItem(key, wanted[key]);" in script
    wanted = json.loads(script.split("var wanted = ", 1)[1].split(";\n", 1)[0])
    assert wanted == {
        "mlflow.workflowType_v1": '"machine_learning"',
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
        'MLflowLocalStorage-1.1-ExperimentPage-["7"]-ReactComponentState': '{"orderByKey": "metrics.`forget_hard`"}',
    }


def _get(url: str, path: str, **query) -> dict:
    with urllib.request.urlopen(
        f"{url}/ajax-api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}", timeout=30
    ) as answer:
        return json.loads(answer.read())


def _search_runs(url: str, experiment_id: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
    request = urllib.request.Request(
        f"{url}/ajax-api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["runs"]


@pytest.mark.slow
def test_ui_of_a_sweep_opens_on_its_runs_nested_under_the_parent(workdir):
    sweep_file = workdir / "sweep.yaml"
    sweep_file.write_text(
        (REPO / "lightning_configs" / "sweep-smoke.yaml")
        .read_text()
        .replace("seed: [0, 1]", "seed: [0]")
        .replace("train.steps: 10", "train.steps: 4")
        .replace("train.eval_every: 5", "train.eval_every: 2")
        .replace("base: r4.yaml", f"base: {REPO / 'lightning_configs' / 'r4.yaml'}")
    )
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", "sweep", "--config", str(sweep_file), "--jobs", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab", "ui", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        lines = [process.stdout.readline()]
        while (
            not lines[-1].startswith("forgetlab's view") and len(lines) < 50
        ):  # the server writes to the same terminal
            lines.append(process.stdout.readline())
        experiment = _get(url, "experiments/get-by-name", experiment_name="forgetlab")["experiment"]
        runs = _search_runs(url, experiment["experiment_id"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert lines[0].startswith("starting the MLflow UI for sqlite:///") and url in lines[0]
    assert lines[-2].strip() == (
        f"runs of 'forgetlab': {url}/#/experiments/{experiment['experiment_id']}/runs?workflowType=machine_learning"
    )
    assert lines[-1].strip().endswith(f"&viewStateShareKey={VIEW_KEY}")
    experiment_tags = {tag["key"]: tag["value"] for tag in experiment["tags"]}
    assert experiment_tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert "params.`lora.rank`" in json.loads(view_state_of(experiment_tags[VIEW_TAG]))["selectedColumns"]
    tags = {run["info"]["run_name"]: {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])} for run in runs}
    [parent_name] = [name for name, run_tags in tags.items() if run_tags.get("forgetlab.kind") == "sweep"]
    parent_id = next(run["info"]["run_id"] for run in runs if run["info"]["run_name"] == parent_name)
    children = {name for name, run_tags in tags.items() if run_tags.get("mlflow.parentRunId") == parent_id}
    assert children == {"embedded-tiny-r1-code-s0", "embedded-tiny-r2-code-s0"} and len(runs) == 3
    assert all(run["info"]["status"] == "FINISHED" for run in runs)
    # What the UI's Dataset, Source and User columns read: every run (the parent too) has its
    # context tags, and each point its data sets with their roles.
    assert all(run_tags.get("mlflow.user") and run_tags.get("mlflow.source.name") for run_tags in tags.values())
    for run in runs:
        if run["info"]["run_name"] == parent_name:
            continue
        roles = {
            tag["value"]
            for dataset_input in run["inputs"]["dataset_inputs"]
            for tag in dataset_input.get("tags", [])
            if tag["key"] == "mlflow.data.context"
        }
        assert {"training", "validation", "forgetting"} <= roles
