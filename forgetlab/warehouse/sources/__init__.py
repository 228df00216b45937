"""Tracking-store readers for the exporter, and which one a tracking URI gets.

- `sqlite:///PATH`: the SQLite file, directly (sqlite.py).
- `postgresql://...` (also `postgresql+psycopg://`, `postgres://`): MLflow's backend store on
  PostgreSQL, directly and read-only (postgres.py).
- `http(s)://...`: an MLflow tracking server, through its REST API (remote.py).

Each reader imports its driver (ADBC, MLflow) only when it reads, so choosing one costs nothing.
"""

from __future__ import annotations

from forgetlab.errors import UserError
from forgetlab.locations import sqlite_path
from forgetlab.warehouse.sources.base import Catalog, ProgressFactory, Source
from forgetlab.warehouse.sources.postgres import PostgresSource, is_postgres_uri
from forgetlab.warehouse.sources.remote import RemoteSource
from forgetlab.warehouse.sources.sqlite import SqliteSource

__all__ = ["Catalog", "PostgresSource", "ProgressFactory", "RemoteSource", "Source", "SqliteSource", "open_source"]


def open_source(tracking_uri: str) -> Source:
    """The reader for a tracking URI."""
    database = sqlite_path(tracking_uri)
    if database is not None:
        return SqliteSource(database)
    if is_postgres_uri(tracking_uri):
        return PostgresSource(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return RemoteSource(tracking_uri)
    raise UserError(
        f"cannot export from tracking URI {tracking_uri!r}: forgetlab reads `sqlite:///PATH` stores, "
        "`postgresql://USER@HOST:PORT/DB` backend stores and `http(s)://` MLflow servers; "
        "pass --tracking-uri or set MLFLOW_TRACKING_URI"
    )
