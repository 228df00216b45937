"""Read an MLflow SQLite tracking store directly, read-only.

Why not MLflow's client: it builds an ORM object per metric point and answers one run and key
per call (mlflow #7365); why not DuckDB's sqlite extension: it needs a download. The schema read
here (`experiments`, `runs`, `params`, `tags`, `metrics`) has been stable across MLflow 2.x-3.x.

- The small tables come through the standard `sqlite3` module, in one read transaction.
- Metric histories come through the ADBC SQLite driver (`adbc-driver-sqlite`), which steps SQLite
  in C and fills Arrow columns directly: no Python object per point. A read of every run scans
  the table in rowid order, split into rowid ranges read by parallel connections; a read of a
  few runs uses the `run_uuid` index. The low-level ADBC API is used, not its DB-API module,
  which imports pandas (0.7 s).
- New points are found by rowid: SQLite gives a new row a rowid above every existing one, so the
  runs with rows above the last export's highest rowid are the runs whose histories changed. The
  watermark also records what that row held; if it is gone (the newest run was garbage-collected)
  the watermark is not trusted and every run is re-read.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from forgetlab.errors import UserError
from forgetlab.warehouse.freshness import store_mtime_ns
from forgetlab.warehouse.sources.base import Catalog, ProgressFactory, digest, key_value_digests, quote_list

if TYPE_CHECKING:
    import pyarrow as pa

READ_THREADS = 2  # parallel rowid ranges for a read of every run (SQLite readers do not block each other)
BATCH_ROWS = 1 << 16  # rows per Arrow batch read from SQLite
IN_LIST = 500  # run ids per `run_uuid IN (...)` query
_METRIC_SELECT = "SELECT run_uuid AS run_id, key, step, value, timestamp, is_nan, rowid AS seq FROM metrics"
_WATERMARK_ROW = "SELECT rowid, run_uuid, key, step, timestamp FROM metrics"


BUSY_TIMEOUT_MS = 5000  # what Python's sqlite3 waits for a lock by default


class SqliteSource:
    """A read-only view of one `mlflow.db`."""

    def __init__(self, database: Path):
        database = Path(database).expanduser().resolve()
        if not database.is_file():
            raise UserError(
                f"no MLflow tracking store at {database}: run a fine-tuning first, or pass "
                "--tracking-uri sqlite:///PATH/mlflow.db (or set MLFLOW_TRACKING_URI)"
            )
        self.path = database
        self.description = f"sqlite:///{database}"
        # mode=ro: the exporter can never write to (or create) the tracking store.
        self._uri = f"{database.as_uri()}?mode=ro"
        self._db = sqlite3.connect(self._uri, uri=True, isolation_level=None)
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"experiments", "runs", "params", "tags", "metrics"} - tables
        if missing:
            self._db.close()
            raise UserError(f"{database} is not an MLflow tracking store (no table {sorted(missing)[0]!r})")
        self._run_count = 0
        self._max_rowid = 0

    def close(self) -> None:
        self._db.close()

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def read_catalog(self, watermark: str = "") -> Catalog:
        mtime = store_mtime_ns(self.path)  # taken first: a write during the read makes the next check stale
        db = self._db
        db.execute("BEGIN")  # one consistent snapshot of the small tables and the watermark
        try:
            experiment_columns = self._columns("experiments")
            times = [c if c in experiment_columns else f"NULL AS {c}" for c in ("creation_time", "last_update_time")]
            experiments = db.execute(
                f"SELECT CAST(experiment_id AS TEXT), name, artifact_location, lifecycle_stage, {', '.join(times)} "
                "FROM experiments ORDER BY experiment_id"
            ).fetchall()
            runs = db.execute(
                "SELECT run_uuid, name, CAST(experiment_id AS TEXT), status, lifecycle_stage, start_time, end_time, "
                "user_id, artifact_uri FROM runs ORDER BY start_time, run_uuid"
            ).fetchall()
            params = db.execute("SELECT run_uuid, key, value FROM params ORDER BY run_uuid, key").fetchall()
            tags = db.execute("SELECT run_uuid, key, value FROM tags ORDER BY run_uuid, key").fetchall()
            newest = db.execute(f"{_WATERMARK_ROW} ORDER BY rowid DESC LIMIT 1").fetchone()
            changed, orphans = self._changed_since(watermark, {row[0] for row in runs})
        finally:
            db.execute("COMMIT")
        self._run_count = len(runs)
        self._max_rowid = newest[0] if newest else 0

        param_digests = key_value_digests(params)
        tag_digests = key_value_digests(tags)
        signatures = {row[0]: digest((row[1:], param_digests.get(row[0]), tag_digests.get(row[0]))) for row in runs}
        notes = [f"{orphans} metric rows belong to no run in the store and were skipped"] if orphans else []
        return Catalog(
            experiments=experiments,
            runs=runs,
            params=params,
            tags=tags,
            signatures=signatures,
            skipped_points=orphans,
            source_mtime_ns=mtime,
            notes=notes,
            metrics_changed=set(signatures) if changed is None else changed,
            watermark="" if newest is None else "|".join(map(str, newest)),
        )

    def _changed_since(self, watermark: str, run_ids: set[str]) -> tuple[Optional[set[str]], int]:
        """Runs with rows above the watermark's rowid, and how many such rows have no run.

        None when the watermark cannot be trusted (none yet, or its row is gone): read everything.
        """
        rowid, sep, recorded = watermark.partition("|")
        if not sep or not rowid.isdigit():
            return None, 0
        row = self._db.execute(f"{_WATERMARK_ROW} WHERE rowid = ?", (int(rowid),)).fetchone()
        if row is None or "|".join(map(str, row)) != watermark:
            return None, 0
        # `+run_uuid` keeps SQLite off MLflow's run_uuid index: grouping by it, the planner scans
        # that whole index (0.19 s at 1.2 M points, growing with the store) instead of reading only
        # the rows above the watermark by rowid (0.1 ms when nothing is new).
        counts = self._db.execute(
            "SELECT run_uuid, count(*) FROM metrics WHERE rowid > ? GROUP BY +run_uuid", (int(rowid),)
        ).fetchall()
        changed = {run_id for run_id, _ in counts if run_id in run_ids}
        return changed, sum(count for run_id, count in counts if run_id not in run_ids)

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        """Every raw metric row of these runs (duplicates and NaNs included; cleaning is the exporter's).

        Reading every run scans the whole table, so rows of no run come back too (the exporter
        drops and counts them).
        """
        import pyarrow as pa

        if not run_ids:
            return pa.table({})
        if len(run_ids) >= self._run_count:
            edges = [self._max_rowid * part // READ_THREADS for part in range(READ_THREADS + 1)]
            queries = [f"{_METRIC_SELECT} WHERE rowid > {low} AND rowid <= {high}" for low, high in zip(edges, edges[1:])]
            queries[-1] = f"{_METRIC_SELECT} WHERE rowid > {edges[-2]}"  # and rows added since the catalog
        else:
            chunks = [run_ids[start:start + IN_LIST] for start in range(0, len(run_ids), IN_LIST)]
            queries = [f"{_METRIC_SELECT} WHERE run_uuid IN ({quote_list(chunk)})" for chunk in chunks]
        advance = progress(f"reading {len(run_ids):,} runs' metrics", len(queries)) if progress else None
        with ThreadPoolExecutor(min(READ_THREADS, len(queries))) as pool:
            parts = list(pool.map(lambda sql: self._arrow(sql, advance), queries))
        return pa.concat_tables(parts)

    def _arrow(self, sql: str, advance) -> "pa.Table":
        """One query into Arrow through its own ADBC connection (so ranges can be read in parallel)."""
        import adbc_driver_manager
        import adbc_driver_sqlite
        import pyarrow as pa

        database = adbc_driver_sqlite.connect(self._uri)
        connection = adbc_driver_manager.AdbcConnection(database)
        # Read-only connections opened at once on a WAL store that no writer has open race to
        # recover its index ("database is locked"): wait for the lock as sqlite3 does (5 s).
        pragma = adbc_driver_manager.AdbcStatement(connection)
        try:
            pragma.set_sql_query(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            pragma.execute_update()
        finally:
            pragma.close()
        statement = adbc_driver_manager.AdbcStatement(connection)
        try:
            # Large batches: the driver's default (1,024 rows) makes a thousand chunks per million
            # points, and the cleaning pays per chunk.
            statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(BATCH_ROWS)})
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
        finally:
            statement.close()
            connection.close()
            database.close()
        if advance is not None:
            advance(1)
        return table
