"""A real `mlflow server` on a free loopback port for tests, stopped by its PID afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Union


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            error = process.stderr.read().decode()[-2000:] if process.stderr else ""
            raise RuntimeError(f"mlflow server did not start: {error}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def mlflow_server(database: Union[Path, str], artifact_root: Path, *, proxy_artifacts: bool = False) -> Iterator[str]:
    """Serve a store on 127.0.0.1 (lean: one worker, no job runners); yields its URL.

    `database`: a SQLite file, or a backend store URI (e.g. `postgresql+psycopg://...`).
    `proxy_artifacts`: the server stores artifacts itself in `artifact_root`
    (`--artifacts-destination`, clients upload through it), as a team server does; otherwise
    clients write them to `artifact_root` directly.
    """
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    backend = database if isinstance(database, str) else f"sqlite:///{database}"
    artifacts = (
        ["--artifacts-destination", artifact_root.as_uri()]
        if proxy_artifacts
        else ["--default-artifact-root", artifact_root.as_uri()]
    )
    process = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            backend,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *artifacts,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    finally:
        stop(process)
