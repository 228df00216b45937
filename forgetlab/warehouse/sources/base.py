"""What every tracking-store reader hands the exporter.

A source yields a `Catalog` (experiments, runs, params, tags: small, always read in full, plus a
per-run signature that changes whenever anything about the run changes) and, for the runs whose
signature changed, their raw metric rows. Keeping every reader behind this one shape lets the
SQLite, PostgreSQL and REST paths be checked against each other row for row.

pyarrow is imported inside the functions that build tables: an export that finds nothing new
never needs it, and its import is a third of such an export's start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

# Raw metric rows, before deduplication. `seq` orders rows logged with the same timestamp (the
# SQLite rowid, PostgreSQL's physical order, or arrival order from a server), so "keep the
# latest" is deterministic. `run_id` and `key` may come dictionary-encoded.
METRIC_COLUMNS = ("run_id", "key", "step", "value", "timestamp", "is_nan", "seq")
# A source that reads curve by curve says so in the table's schema metadata instead: rows sorted by
# (run_id, key, step) with the rows of one step in write order, run_id and key dictionary-encoded
# with codes in that order, and no `seq` (the position is the write order).
IN_CURVE_ORDER = b"forgetlab.in_curve_order"

Progress = Callable[[int], None]  # advance a progress bar by n units
ProgressFactory = Callable[[str, int], Optional[Progress]]  # (description, total) -> advance, or None


def metric_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("run_id", pa.string()),
            ("key", pa.string()),
            ("step", pa.int64()),
            ("value", pa.float64()),
            ("timestamp", pa.int64()),  # epoch milliseconds, as MLflow stores it
            ("is_nan", pa.bool_()),
            ("seq", pa.int64()),
        ]
    )


def coded_metric_schema() -> "pa.Schema":
    """`metric_schema()` with run_id and key as dictionary codes (int32 indices)."""
    import pyarrow as pa

    schema = metric_schema()
    for name in ("run_id", "key"):
        schema = schema.set(schema.get_field_index(name), pa.field(name, pa.dictionary(pa.int32(), pa.string())))
    return schema


def raw_schema_in_curve_order() -> "pa.Schema":
    """The raw rows of a source that reads curve by curve (see IN_CURVE_ORDER)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("run_id", pa.dictionary(pa.int32(), pa.string())),
            ("key", pa.dictionary(pa.int32(), pa.string())),
            ("step", pa.int64()),
            ("value", pa.float64()),
            ("timestamp", pa.timestamp("ms")),
            ("is_nan", pa.bool_()),
        ],
        metadata={IN_CURVE_ORDER: b"1"},
    )


def experiment_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("experiment_id", pa.string()),
            ("name", pa.string()),
            ("artifact_location", pa.string()),
            ("lifecycle_stage", pa.string()),
            ("creation_time", pa.timestamp("ms")),
            ("last_update_time", pa.timestamp("ms")),
        ]
    )


def run_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("run_id", pa.string()),
            ("name", pa.string()),
            ("experiment_id", pa.string()),
            ("status", pa.string()),
            ("lifecycle_stage", pa.string()),
            ("start_time", pa.timestamp("ms")),
            ("end_time", pa.timestamp("ms")),
            ("user_id", pa.string()),
            ("artifact_uri", pa.string()),
        ]
    )


def key_value_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema([("run_id", pa.string()), ("key", pa.string()), ("value", pa.string())])


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
    # Sources that track new metric rows by a watermark (SQLite's rowid) leave the metric rows out
    # of the signatures and name here the runs that gained rows since the given watermark; None
    # means the signatures cover the metrics too.
    metrics_changed: Optional[set[str]] = None
    watermark: str = ""  # recorded by the export, handed back to the next `read_catalog`

    def experiments_signature(self) -> str:
        return digest(sorted(self.experiments, key=repr))

    def tables(self) -> dict[str, "pa.Table"]:
        return {
            "experiments": rows_to_table(self.experiments, experiment_schema()),
            "runs": rows_to_table(self.runs, run_schema()),
            "params": rows_to_table(self.params, key_value_schema()),
            "tags": rows_to_table(self.tags, key_value_schema()),
        }


class Source(Protocol):
    description: str
    # One sentence when the store's MLflow schema revision is not one the reader was tested on
    # (sources/revisions.py); None when it is, or when the reader goes through MLflow (REST).
    schema_note: Optional[str]

    def read_catalog(self, watermark: str = "") -> Catalog:
        """The small tables; `watermark` is what the previous export's catalog recorded ('' if none)."""
        ...

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        """Every raw metric row of these runs (duplicates and NaNs included), columns METRIC_COLUMNS."""
        ...

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


def rows_to_table(rows: list[tuple], schema: "pa.Schema") -> "pa.Table":
    """Row tuples to a typed Arrow table; epoch-millisecond integers become timestamps."""
    from forgetlab.warehouse.arrow_arrays import table_from_python

    return table_from_python(list(zip(*rows)) if rows else [() for _ in schema], schema)


def quote_list(values: list[str]) -> str:
    """SQL string literals for an IN list (run ids come from the store itself, but quote anyway)."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)
