"""`forgetlab ui`: one-line errors for a bad or busy port, and what the MLflow UI reads from a sweep's store.

The UI reads everything through MLflow's REST API; so does the last test: the experiment's kind
(which view the UI opens on), its default columns, and the sweep's children nested under their
parent run.
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

from forgetlab.mlflow_ui import EXPERIMENT_KIND_TAG, TRAINING_KIND, VIEW_KEY, VIEW_TAG, mark_training_experiment

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
    chosen = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "custom_model_development"})
    for experiment_id in (plain, chosen, plain):
        assert mark_training_experiment(client, experiment_id) == experiment_id
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    columns = json.loads(client.get_experiment(plain).tags[VIEW_TAG])["selectedColumns"]
    assert {"params.`lora.rank`", "params.`data.name`", "params.`P`", "metrics.`forget_soft`", "metrics.`ft_loss`"} <= set(columns)


def _get(url: str, path: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}/ajax-api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}", timeout=30) as answer:
        return json.loads(answer.read())


def _search_runs(url: str, experiment_id: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
    request = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["runs"]


@pytest.mark.slow
def test_ui_of_a_sweep_opens_on_its_runs_nested_under_the_parent(workdir):
    sweep_file = workdir / "sweep.yaml"
    sweep_file.write_text((REPO / "lightning_configs" / "sweep-smoke.yaml").read_text().replace("seed: [0, 1]", "seed: [0]")
                          .replace("train.steps: 10", "train.steps: 4").replace("train.eval_every: 5", "train.eval_every: 2")
                          .replace("base: r4.yaml", f"base: {REPO / 'lightning_configs' / 'r4.yaml'}"))
    done = subprocess.run([sys.executable, "-m", "forgetlab", "sweep", "--config", str(sweep_file), "--jobs", "2"],
                          cwd=workdir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "forgetlab", "ui", "--port", str(port)], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        lines = [process.stdout.readline()]
        while not lines[-1].startswith("runs of") and len(lines) < 50:  # the server writes to the same terminal
            lines.append(process.stdout.readline())
        experiment = _get(url, "experiments/get-by-name", experiment_name="forgetlab")["experiment"]
        runs = _search_runs(url, experiment["experiment_id"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert lines[0].startswith(f"starting the MLflow UI for sqlite:///") and url in lines[0]
    assert lines[-1].strip() == (f"runs of 'forgetlab': {url}/#/experiments/{experiment['experiment_id']}/runs"
                                f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")
    experiment_tags = {tag["key"]: tag["value"] for tag in experiment["tags"]}
    assert experiment_tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND  # the UI opens on runs, not traces
    assert "params.`lora.rank`" in json.loads(experiment_tags[VIEW_TAG])["selectedColumns"]
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
