"""A lean MLflow UI server over a tracking store, and the address of an experiment's runs in it.

`mlflow server` is started with one worker and no job runners (about 0.5 GB instead of 2 GB),
with forgetlab's app plugin (forgetlab/ui_app.py: a fresh browser opens in training mode on
forgetlab's view); its port is checked before it starts, because uvicorn reports a port in use
with a traceback and exit status 0. Once it serves, the experiment is looked up (and tagged for
the UI's training view, so stores made by older versions open right too) through the server's
own REST API, which works for any backend store without importing MLflow here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from forgetlab.errors import UserError
from forgetlab.mlflow_ui import VIEW_TAG, missing_view_tags, runs_address

STARTUP_SECONDS = 120.0  # a cold `mlflow server` on a busy 2-core machine takes 7-30 s
APP_NAME = "forgetlab"  # the `mlflow.app` entry point in pyproject.toml


def app_installed() -> bool:
    """Whether MLflow can find forgetlab's app plugin (a checkout used without `pip install -e .` has none)."""
    from importlib.metadata import entry_points

    return any(entry.name == APP_NAME for entry in entry_points(group="mlflow.app"))


def check_port_free(host: str, port: int) -> None:
    """Fail in one line when the port cannot be bound (in use, or not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (98, 48):  # EADDRINUSE on Linux, macOS
                raise UserError(
                    f"port {port} on {host} is in use; stop what uses it or pick another with --port"
                ) from None
            raise UserError(f"cannot serve on {host}:{port} ({error.strerror}); check --host and --port") from None


def server_command(
    tracking_uri: str, host: str, port: int, artifact_root: Optional[str], with_app: bool = True
) -> list[str]:
    # The `mlflow` script, not `python -m mlflow`: the current folder stays off the server's import
    # path, so package metadata lying there (a checkout's *.egg-info) cannot hide the app plugin.
    script = Path(sys.executable).with_name("mlflow")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]
    command = [
        *launcher,
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        # The UI polls every few seconds: an access log would bury everything else.
        "--uvicorn-opts",
        "--no-access-log",
    ]
    if with_app:
        command += ["--app-name", APP_NAME]
    if artifact_root:
        command += ["--default-artifact-root", artifact_root]
    return command


def start_server(command: list[str]) -> subprocess.Popen:
    """Start `mlflow server` without background job workers, MLflow's telemetry off."""
    environment = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    return subprocess.Popen(command, env=environment)


def browse_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches the server (a wildcard bind is reached on loopback)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def wait_until_serving(url: str, process: subprocess.Popen, seconds: float = STARTUP_SECONDS) -> None:
    """Return once the server answers /health; a one-line error when it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise UserError(
                f"mlflow server exited with status {code} before serving; see its output above", exit_code=code or 1
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise UserError(f"mlflow server did not answer at {url} within {seconds:.0f} s; see its output above")


def _rest(url: str, path: str, payload: Optional[dict] = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def _retag(url: str, experiment: dict) -> None:
    """Give an experiment forgetlab's kind and current view where they are missing or older."""
    tags = {tag["key"]: tag["value"] for tag in experiment.get("tags", [])}
    for key, value in missing_view_tags(tags).items():
        _rest(
            url,
            "experiments/set-experiment-tag",
            {"experiment_id": experiment["experiment_id"], "key": key, "value": value},
        )


def _forgetlab_experiments(url: str) -> list[dict]:
    """Every active experiment forgetlab tagged with a view (its runs, its fits), any version of it."""
    found, token = [], None
    while True:
        page = _rest(url, "experiments/search", {"max_results": 1000, **({"page_token": token} if token else {})})
        found += [
            experiment
            for experiment in page.get("experiments", [])
            if any(tag["key"] == VIEW_TAG for tag in experiment.get("tags", []))
        ]
        token = page.get("next_page_token")
        if not token:
            return found


def experiment_address(url: str, experiment: str) -> Optional[str]:
    """The runs address of `experiment`; None when it does not exist.

    It and every experiment forgetlab tagged before (a store made by an older version) get the
    current kind and view first: the page the server sends a fresh browser seeds that view.
    """
    query = urllib.parse.urlencode({"experiment_name": experiment})
    try:
        found = _rest(url, f"experiments/get-by-name?{query}")["experiment"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            found = None
        else:
            raise
    others = [
        other
        for other in _forgetlab_experiments(url)
        if found is None or other["experiment_id"] != found["experiment_id"]
    ]
    for each in ([found] if found else []) + others:
        _retag(url, each)
    return runs_address(url, found["experiment_id"]) if found else None
