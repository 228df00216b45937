"""The tracking store: the one place an MLflow client is built (`client`), and made safe to share.

Several processes may log into one SQLite store at once (`forgetlab sweep --jobs K`): the store
is created under a file lock and switched to WAL journal mode once (`prepare_local_store`), and
every call on the store is retried with backoff while SQLite reports "database is locked"
(`RetryingClient`). See docs/reliability.md.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Optional

from forgetlab.paths import resolve_tracking_uri, sqlite_path

LOCKED_RETRY_SECONDS = 300.0  # how long a call keeps retrying while the SQLite store is locked
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
        with_retry(_mlflow_client(tracking_uri).search_experiments, max_results=1)  # creates the tables
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


def is_concurrent_dataset_insert(error: BaseException) -> bool:
    """Two runs logging the same new dataset at once: MLflow checks, then inserts, so one insert loses.

    Retrying is right: the second attempt finds the dataset the other run inserted and only links it.
    """
    text = str(error)
    return "datasets" in text and ("UNIQUE constraint failed" in text or "duplicate key value" in text)


def with_retry(call, *args, **kwargs):
    """`call(*args, **kwargs)`, retried with jittered backoff while SQLite says the store is locked
    (or while another run's identical dataset insert wins a race, `is_concurrent_dataset_insert`).

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
            retryable = is_locked_error(error) or is_concurrent_dataset_insert(error)
            if not retryable or time.monotonic() > deadline:
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


def _mlflow_client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def client(tracking_uri: Optional[str] = None, prepare: bool = False) -> RetryingClient:
    """An MLflow client on `tracking_uri` (resolved as for runs), every call retried while the store is locked.

    With `prepare`, a local store is first made ready for several writers (`prepare_local_store`):
    for whoever is about to write; readers need not.
    No mlflow.set_tracking_uri: it also sets $MLFLOW_TRACKING_URI, so every later process started
    from this one (a test's next run, a notebook's next sweep) would log there.
    """
    resolved = resolve_tracking_uri(tracking_uri)
    if prepare:
        prepare_local_store(resolved)
    return RetryingClient(_mlflow_client(resolved))
