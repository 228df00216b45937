"""Runs logging to a real MLflow server, and `forgetlab ui` serving the local store on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow_server import free_port, mlflow_server, wait_healthy
from tiny import TINY_BASE

from forgetlab.commands.ui import exposure_warning

REPO = Path(__file__).resolve().parents[1]
TINY = [*TINY_BASE, "train.steps=10", "train.eval_every=5"]


@pytest.mark.slow
def test_run_logs_to_a_remote_server(workdir):
    from mlflow.tracking import MlflowClient

    with mlflow_server(workdir / "server.db", workdir / "server-artifacts") as url:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "forgetlab",
                "run",
                "--config",
                str(REPO / "lightning_configs" / "r4.yaml"),
                *TINY,
                f"tracking.uri={url}",
                "--quiet",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        client = MlflowClient(url)
        [run] = client.search_runs([client.get_experiment_by_name("forgetlab").experiment_id])
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "forget_soft")] == [0, 5, 10]
        assert "config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # nothing went to the local store


def test_ui_binds_loopback_by_default_and_warns_otherwise():
    assert exposure_warning("127.0.0.1") is None
    assert exposure_warning("localhost") is None
    assert "readable from the network" in exposure_warning("0.0.0.0")


@pytest.mark.slow
def test_ui_serves_the_local_store_and_stops_with_its_server(workdir):
    from mlflow.tracking import MlflowClient

    (workdir / "mlruns").mkdir()
    MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}").create_experiment("forgetlab")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab", "ui", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        with urllib.request.urlopen(
            f"{url}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=forgetlab", timeout=5
        ) as answer:
            assert b"forgetlab" in answer.read()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    time.sleep(1)
    with pytest.raises(OSError):  # the server went with it: nothing is left listening
        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_ui_without_a_store_says_how_to_make_one(workdir):
    result = subprocess.run(
        [sys.executable, "-m", "forgetlab", "ui"], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no tracking store" in result.stderr and "forgetlab run" in result.stderr
