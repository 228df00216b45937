"""The tracking store: the one place an MLflow client is built (`client`), and made safe to share.

Several processes may log into one SQLite store at once (`forgetlab sweep --jobs K`): the store
is created under a file lock and switched to WAL journal mode once (`prepare_local_store`), and
every call on the store is retried with backoff while SQLite reports "database is locked"
(`RetryingClient`). A store that cannot be written is one line before any work
(`check_store_writable`).

Several processes may also set up the same experiment at once (K runs of a sweep, the tasks of a
SLURM array on one server): creating it and tagging it are create-or-get and set-then-reread on
conflict (`get_or_create_experiment`, `settle_experiment_tags`), never a read followed by a blind
write. See docs/reliability.md.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Callable, Optional

from forgetlab.errors import UserError
from forgetlab.locations import resolve_tracking_uri, sqlite_path
from forgetlab.utils.writable import why_not_writable

LOCKED_RETRY_SECONDS = 300.0  # how long a call keeps retrying while the SQLite store is locked
CONFLICT_ATTEMPTS = 20  # reads again after another process won an insert; each win settles one row
WRITABLE_FIX = "run from a writable folder, or point the tracking URI (--tracking-uri, tracking.uri or MLFLOW_TRACKING_URI) at a writable store"


def check_store_writable(tracking_uri: str, fix: str = WRITABLE_FIX) -> None:
    """One line (UserError) when a local SQLite store cannot be written: a read-only folder or file.

    Asked before any work: MLflow would fail at the run's first write (or at `mlflow.db.lock`)
    with a traceback, after the model was loaded. A server store is the server's business.
    """
    database = sqlite_path(tracking_uri)
    problem = why_not_writable(database) if database is not None else None
    if problem:
        raise UserError(f"the tracking store {database} cannot be written ({problem}); {fix}")


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
    check_store_writable(tracking_uri)
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


def is_conflict(error: BaseException) -> bool:
    """Another process inserted the same row (same unique key) between this one's read and its write.

    SQLite says `UNIQUE constraint failed`, PostgreSQL `duplicate key value violates unique
    constraint` (both reach us through MLflow, directly or in a server's answer); MLflow's own
    check says RESOURCE_ALREADY_EXISTS.
    """
    text = str(error)
    return any(
        marker in text for marker in ("UNIQUE constraint failed", "duplicate key value", "RESOURCE_ALREADY_EXISTS")
    )


def get_or_create_experiment(client, name: str, artifact_location: Optional[str] = None) -> str:
    """The id of experiment `name`, created if missing: safe when N processes ask at once.

    Names are unique in MLflow's store, so of N creates one wins and the others get a conflict;
    they read the winner's id. A deleted experiment keeps its name and takes no runs: one line.
    """
    for _ in range(CONFLICT_ATTEMPTS):
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                raise UserError(
                    f"experiment '{name}' is deleted in the tracking store; restore it "
                    f"(mlflow experiments restore --experiment-id {existing.experiment_id}) or log to another experiment"
                )
            return existing.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except Exception as error:
            if not is_conflict(error):
                raise
    raise RuntimeError(f"experiment '{name}' was reported both missing and existing {CONFLICT_ATTEMPTS} times")


def settle_experiment_tags(client, experiment_id: str, to_set: Callable[[dict[str, str]], dict[str, str]]) -> None:
    """Set the tags `to_set(current tags)` asks for: safe when N processes do it at once.

    MLflow's `set_experiment_tag` reads the tag and then inserts or updates it (SQLAlchemy's
    merge, on the server for a server store), so two processes setting a new tag at once can both
    insert, and one gets a unique-key violation. That process reads the tags again and asks
    `to_set` anew: the winner's value is there now (nothing left to set, or an update, which
    cannot conflict). Every loss means another process settled a row, so this ends.
    """
    for _ in range(CONFLICT_ATTEMPTS):
        wanted = to_set(dict(client.get_experiment(experiment_id).tags or {}))
        try:
            for key, value in wanted.items():
                client.set_experiment_tag(experiment_id, key, value)
            return
        except Exception as error:
            if not is_conflict(error):
                raise
    raise RuntimeError(f"experiment {experiment_id}: tags still conflicting after {CONFLICT_ATTEMPTS} attempts")


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
