"""What every tracking-store reader hands the exporter, and which reader a URI gets.

A source yields a `Catalog` (experiments, runs, params, tags: small, always read in full, plus a
per-run signature that changes whenever anything about the run changes) and, for the runs whose
signature changed, their raw metric rows. Keeping both readers behind this one shape lets the
direct SQLite path and the REST path be checked against each other row for row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import pyarrow as pa

from forgetlab.errors import UserError

# Raw metric rows, before deduplication. `seq` orders rows logged with the same timestamp (the
# SQLite rowid, or arrival order from a server), so "keep the latest" is deterministic.
METRIC_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("key", pa.string()),
    ("step", pa.int64()),
    ("value", pa.float64()),
    ("timestamp", pa.int64()),  # epoch milliseconds, as MLflow stores it
    ("is_nan", pa.bool_()),
    ("seq", pa.int64()),
])

EXPERIMENT_SCHEMA = pa.schema([
    ("experiment_id", pa.string()),
    ("name", pa.string()),
    ("artifact_location", pa.string()),
    ("lifecycle_stage", pa.string()),
    ("creation_time", pa.timestamp("ms")),
    ("last_update_time", pa.timestamp("ms")),
])

RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("name", pa.string()),
    ("experiment_id", pa.string()),
    ("status", pa.string()),
    ("lifecycle_stage", pa.string()),
    ("start_time", pa.timestamp("ms")),
    ("end_time", pa.timestamp("ms")),
    ("user_id", pa.string()),
    ("artifact_uri", pa.string()),
])

KEY_VALUE_SCHEMA = pa.schema([("run_id", pa.string()), ("key", pa.string()), ("value", pa.string())])

Progress = Callable[[int], None]  # advance a progress bar by n units
ProgressFactory = Callable[[str, int], Optional[Progress]]  # (description, total) -> advance, or None


@dataclass
class Catalog:
    """Everything but the metric histories, read in full on every export (it is small).

    Kept as row tuples, in the column order of the schemas above, and turned into Arrow only when
    something is written: an export that finds nothing new never pays for the conversion.
    """

    experiments: list[tuple]
    runs: list[tuple]
    params: list[tuple]  # (run_id, key, value)
    tags: list[tuple]
    signatures: dict[str, str]  # run_id -> opaque text; differs iff the run may have changed
    skipped_points: int = 0  # metric rows the source holds but cannot attach to a run
    source_mtime_ns: Optional[int] = None  # for SQLite stores: the file's mtime before reading
    notes: list[str] = field(default_factory=list)

    def experiments_signature(self) -> str:
        return digest(sorted(self.experiments, key=repr))

    def tables(self) -> dict[str, pa.Table]:
        return {
            "experiments": rows_to_table(self.experiments, EXPERIMENT_SCHEMA),
            "runs": rows_to_table(self.runs, RUN_SCHEMA),
            "params": rows_to_table(self.params, KEY_VALUE_SCHEMA),
            "tags": rows_to_table(self.tags, KEY_VALUE_SCHEMA),
        }


class Source(Protocol):
    description: str

    def read_catalog(self) -> Catalog: ...

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> pa.Table: ...

    def close(self) -> None: ...


def digest(value: object) -> str:
    """A short stable hash of a Python value's repr (used for signatures)."""
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def key_value_digests(rows: list[tuple]) -> dict[str, str]:
    """Per-run hash of params or tags rows, so a changed tag marks its run as changed."""
    by_run: dict[str, list[tuple[str, str]]] = {}
    for run_id, key, value in rows:
        by_run.setdefault(run_id, []).append((key, value))
    return {run_id: digest(sorted(pairs)) for run_id, pairs in by_run.items()}


def rows_to_table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Row tuples to a typed Arrow table; epoch-millisecond integers become timestamps."""
    columns = list(zip(*rows)) if rows else [() for _ in schema]
    arrays = []
    for values, column in zip(columns, schema):
        if pa.types.is_timestamp(column.type):
            arrays.append(pa.array(list(values), pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array(list(values), column.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def open_source(tracking_uri: str) -> Source:
    """The reader for a tracking URI: SQLite files directly, servers over REST."""
    from forgetlab.paths import sqlite_path

    database = sqlite_path(tracking_uri)
    if database is not None:
        from forgetlab.warehouse.sqlite_source import SqliteSource

        return SqliteSource(database)
    if tracking_uri.startswith(("http://", "https://")):
        from forgetlab.warehouse.remote_source import RemoteSource

        return RemoteSource(tracking_uri)
    raise UserError(
        f"cannot export from tracking URI {tracking_uri!r}: forgetlab reads `sqlite:///PATH` stores "
        "and `http(s)://` MLflow servers; pass --tracking-uri or set MLFLOW_TRACKING_URI"
    )
