"""MLflow tracking for one run: create or reopen the run, log params once, metrics in batches.

Logging a metric through MLflow's SQLite store costs several milliseconds per call, a sizeable
share of a tiny model's step, so metrics are buffered and written with one `log_batch` per
evaluation. Secrets (tokens, passwords in URIs) are scrubbed from everything logged.

Several processes may log into one SQLite store at once (`forgetlab sweep --jobs K`): the store
is created under a file lock and switched to WAL journal mode once (`prepare_local_store`), and
every call on the store is retried with backoff while SQLite reports "database is locked"
(`RetryingClient`). See docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Optional

from forgetlab.mlflow_ui import mark_training_experiment
from forgetlab.paths import default_artifact_root, resolve_tracking_uri, sqlite_path

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
PARAMS_PER_BATCH = 100  # MLflow's limit on params in one log_batch
LOCKED_RETRY_SECONDS = 300.0  # how long a call keeps retrying while the SQLite store is locked
# user:password@ in any URL, anywhere in the text (a command line, a YAML dump), not only a bare URI
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")
_SECRET_PATTERNS = [
    re.compile(r"hf_[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"(?i)(token|secret|password|passwd|api[_-]?key)=([^&\s]+)"),
    re.compile(r"(?i)bearer [A-Za-z0-9._~+/-]+=*"),
]
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "WANDB_API_KEY")


def scrub_secrets(text: str) -> str:
    """Remove credentials from a string before it is logged anywhere."""
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(0).split("=")[0] + "=***" if "=" in match.group(0) else "***", text)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, "***")
    return text


def _is_wal(database: Path) -> bool:
    """Whether a SQLite store is in WAL mode.

    Asked through SQLite, never by reading the file with open(): closing any descriptor of the
    file drops every POSIX lock this process holds on it, including those of open SQLite
    connections (e.g. a sweep's or a resume's MLflow client). Another process then believes it
    is the last user and deletes the WAL under them: "database disk image is malformed".
    """
    if not database.is_file():
        return False
    try:
        connection = sqlite3.connect(database, timeout=10)
        try:
            return connection.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        finally:
            connection.close()
    except sqlite3.Error:
        return False


def prepare_local_store(tracking_uri: str) -> None:
    """Make a local SQLite store ready for several writers before any of them logs.

    MLflow creates its tables on a store's first use with no lock between processes, so K runs
    starting together on a new file race (a half-made schema, a duplicate default experiment).
    The first process here creates them under a file lock; the others wait and find them made.
    Then WAL journal mode is set (once: it is persistent in the file), so readers (the UI, an
    export, a sweep checking its points) never block a run's writes. WAL is set last, so a file
    in WAL mode is a file whose tables exist: the fast path takes no lock and starts no MLflow.
    """
    database = sqlite_path(tracking_uri)
    if database is None:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    if _is_wal(database):
        return
    from filelock import FileLock

    with FileLock(f"{database}.lock", timeout=LOCKED_RETRY_SECONDS):
        if _is_wal(database):
            return
        from mlflow.tracking import MlflowClient

        with_retry(MlflowClient(tracking_uri).search_experiments, max_results=1)  # creates the tables
        try:
            connection = sqlite3.connect(database, timeout=10)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
            finally:
                connection.close()
        except sqlite3.Error:
            pass  # busy with an older writer: rollback journal still works; the next run retries


def is_locked_error(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def with_retry(call, *args, **kwargs):
    """`call(*args, **kwargs)`, retried with jittered backoff while SQLite says the store is locked.

    MLflow waits up to 20 s for a lock (busy_timeout), but SQLite refuses some conflicts at once
    (a transaction that read and then wants to write after another process wrote), so writers
    sharing one file do see "database is locked". A failed statement is rolled back, so
    retrying it logs nothing twice.
    """
    delay, deadline = 0.05, time.monotonic() + LOCKED_RETRY_SECONDS
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_locked_error(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


class RetryingClient:
    """An `MlflowClient` whose every call goes through `with_retry`."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: with_retry(attribute, *args, **kwargs)


class RunTracker:
    """One MLflow run, created (or reopened for a resume) on global rank 0 only."""

    def __init__(self, tracking_uri: Optional[str], experiment: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        prepare_local_store(self.tracking_uri)
        # No mlflow.set_tracking_uri: it also sets $MLFLOW_TRACKING_URI, so every later process
        # started from this one (a test's next run, a notebook's next sweep) would log here.
        self.client = RetryingClient(MlflowClient(self.tracking_uri))
        self.experiment_id = mark_training_experiment(self.client, self._experiment_id(experiment))
        self.run_id: Optional[str] = None
        self._buffer: list[Any] = []

    def _experiment_id(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        artifact_location = None
        if sqlite_path(self.tracking_uri) is not None:
            artifact_location = default_artifact_root().resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except Exception:
            # Another process of a sweep created it between our lookup and our create.
            return self.client.get_experiment_by_name(name).experiment_id

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=scrub_secrets(run_name), tags={k: scrub_secrets(str(v)) for k, v in tags.items()}
        )
        self.run_id = run.info.run_id
        return self.run_id

    def reopen(self, run_id: str) -> None:
        """Continue an existing run (resume): it becomes RUNNING again."""
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, scrub_secrets(str(value))[:MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(entries), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=entries[start : start + PARAMS_PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, scrub_secrets(str(value))) for key, value in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer metrics of one step; written at the next `flush`."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._buffer.extend(Metric(key, float(value), timestamp, step) for key, value in metrics.items())

    def flush(self) -> None:
        """Write buffered metrics, with a heartbeat tag that tells a sweep this run is alive."""
        from mlflow.entities import RunTag

        if self._buffer and self.run_id is not None:
            heartbeat = [RunTag("forgetlab.heartbeat_ms", str(int(time.time() * 1000)))]
            # MLflow accepts at most 1000 metrics per batch.
            for start in range(0, len(self._buffer), 1000):
                self.client.log_batch(self.run_id, metrics=self._buffer[start : start + 1000], tags=heartbeat)
            self._buffer = []

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, scrub_secrets(text), artifact_file)

    def log_file(self, path: Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str, failure: Optional[str] = None) -> None:
        self.flush()
        if failure:
            self.set_tags({"forgetlab.failure": failure[:5000]})
        self.client.set_terminated(self.run_id, status=status)
