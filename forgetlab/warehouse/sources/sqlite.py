"""Read an MLflow SQLite tracking store directly, read-only.

Why not MLflow's client: it builds an ORM object per metric point and answers one run and key
per call (mlflow #7365); why not DuckDB's sqlite extension: it needs a download. The schema read
here (`experiments`, `runs`, `params`, `tags`, `metrics`) has been stable across MLflow 2.x-3.x; the
store's schema revision is read and checked against the tested ones (revisions.py).

- The small tables come through the standard `sqlite3` module, in one read transaction.
- Metric histories come through the ADBC SQLite driver (`adbc-driver-sqlite`), which steps SQLite
  in C and fills Arrow columns directly: no Python object per point. The low-level ADBC API is
  used, not its DB-API module, which imports pandas (0.7 s).
- On a store with MLflow's (run_uuid, key, step) index (MLflow 3.11+), histories are read curve by
  curve through it, one statement bound to every (run, key) pair, in parallel halves: the rows come
  back without their run id and key strings and already in order, so nothing is hashed or sorted
  after. Older stores are scanned instead, by rowid ranges for every run or by the run_uuid index
  for a few, with each row's run id and key.
- Rows naming no run are counted by the catalog (a skip scan of the run_uuid index finds the run
  ids the metrics table holds) and never read.
- New points are found by rowid: SQLite gives a new row a rowid above every existing one, so the
  runs with rows above the last export's highest rowid are the runs whose histories changed. The
  watermark also records what that row held; if it is gone (the newest run was garbage-collected)
  the watermark is not trusted and every run is re-read.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from forgetlab.errors import UserError
from forgetlab.warehouse.freshness import store_mtime_ns
from forgetlab.warehouse.sources.base import (
    Catalog,
    ProgressFactory,
    digest,
    key_value_digests,
    quote_list,
    raw_schema_in_curve_order,
)
from forgetlab.warehouse.sources.revisions import untested_note

if TYPE_CHECKING:
    import pyarrow as pa

READ_THREADS = 2  # parallel connections for a read of many runs (SQLite readers do not block each other)
# Rows per Arrow batch read from SQLite. Large: DuckDB ingests a few big chunks with a third of the
# memory (and page faults) of many 64k-row ones, and the cleaning pays per chunk.
BATCH_ROWS = 1 << 20
IN_LIST = 500  # run ids per `run_uuid IN (...)` query
_METRIC_SELECT = "SELECT run_uuid AS run_id, key, step, value, timestamp, is_nan, rowid AS seq FROM metrics"
_WATERMARK_ROW = "SELECT rowid, run_uuid, key, step, timestamp FROM metrics"
# The curves a run logged and their lengths, by a skip scan of the (run_uuid, key, step) index:
# one seek per key and a count of index entries, no row read. Bound once per run (?1 its id, ?2 its
# number); {index} is that index's name, so the planner cannot pick another (without it, SQLite
# chose MLflow's primary-key index for such queries on a 1.2 M-point store: 25 s instead of 0.1 s).
_CURVES = """
WITH RECURSIVE curve(key) AS (
    SELECT (SELECT min(key) FROM metrics INDEXED BY {index} WHERE run_uuid = ?1)
    UNION ALL
    SELECT (SELECT min(key) FROM metrics INDEXED BY {index} WHERE run_uuid = ?1 AND key > curve.key)
    FROM curve WHERE curve.key IS NOT NULL
) SELECT ?2 AS run, key, (SELECT count(*) FROM metrics INDEXED BY {index} WHERE run_uuid = ?1 AND key = curve.key) AS n
FROM curve WHERE key IS NOT NULL"""
# One curve's rows in (step, rowid) order, straight off that index; bound once per curve.
_CURVE_ROWS = (
    "SELECT step, value, timestamp, is_nan FROM metrics INDEXED BY {index} "
    "WHERE run_uuid = ?1 AND key = ?2 ORDER BY step, rowid"
)
# The distinct run ids in the metrics table, by a skip scan of an index that starts with run_uuid.
_METRIC_RUNS = """
WITH RECURSIVE seen(run_uuid) AS (
    SELECT (SELECT min(run_uuid) FROM metrics)
    UNION ALL
    SELECT (SELECT min(run_uuid) FROM metrics WHERE run_uuid > seen.run_uuid) FROM seen WHERE seen.run_uuid IS NOT NULL
) SELECT run_uuid FROM seen WHERE run_uuid IS NOT NULL"""


BUSY_TIMEOUT_MS = 5000  # what Python's sqlite3 waits for a lock by default


def _unreadable(database: Path, error: sqlite3.Error) -> str:
    """Why a store cannot be opened, in one line with the fix.

    A WAL-mode store (forgetlab sets WAL) is read through a shared-memory file beside it
    (`mlflow.db-shm`); when no writer has it open, a reader must create that file, which a
    read-only folder refuses ("unable to open database file").
    """
    from forgetlab.utils.writable import why_not_writable

    problem = why_not_writable(database)
    if problem:
        return (
            f"cannot read the tracking store {database}: SQLite must create {database.name}-shm beside it and "
            f"the folder is read-only ({problem}); copy {database.parent} to a writable folder and export "
            f"from the copy (--tracking-uri sqlite:///COPY/{database.name})"
        )
    return f"cannot read the tracking store {database}: {str(error).splitlines()[0]}"


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
        try:
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as error:
            self._db.close()
            raise UserError(_unreadable(database, error)) from None
        missing = {"experiments", "runs", "params", "tags", "metrics"} - tables
        if missing:
            self._db.close()
            raise UserError(f"{database} is not an MLflow tracking store (no table {sorted(missing)[0]!r})")
        revisions = (
            [row[0] for row in self._db.execute("SELECT version_num FROM alembic_version")]
            if "alembic_version" in tables
            else []
        )
        self.schema_note = untested_note(revisions)
        self._run_count = 0
        self._max_rowid = 0
        # MLflow 3.11+ has an index on (run_uuid, key, step): read curve by curve. MLflow 2.x+ has
        # one on run_uuid: count rows of no run by seeks.
        self._curve_index = self._index_on("metrics", ("run_uuid", "key", "step"))
        self._run_index = self._index_on("metrics", ("run_uuid",))

    def _index_on(self, table: str, columns: tuple[str, ...]) -> Optional[str]:
        """The name of an index on `table` whose leading columns are `columns` (found by shape, not
        by name, so a store whose index MLflow named otherwise still qualifies)."""
        for index in self._db.execute(f"PRAGMA index_list({table})").fetchall():
            indexed = tuple(row[2] for row in self._db.execute(f"PRAGMA index_info('{index[1]}')").fetchall())
            if indexed[: len(columns)] == columns:
                return index[1]
        return None

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
        notes += [self.schema_note] if self.schema_note else []
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
            return None, self._rows_of_no_run(run_ids)
        row = self._db.execute(f"{_WATERMARK_ROW} WHERE rowid = ?", (int(rowid),)).fetchone()
        if row is None or "|".join(map(str, row)) != watermark:
            return None, self._rows_of_no_run(run_ids)
        # `+run_uuid` keeps SQLite off MLflow's run_uuid index: grouping by it, the planner scans
        # that whole index (0.19 s at 1.2 M points, growing with the store) instead of reading only
        # the rows above the watermark by rowid (0.1 ms when nothing is new).
        counts = self._db.execute(
            "SELECT run_uuid, count(*) FROM metrics WHERE rowid > ? GROUP BY +run_uuid", (int(rowid),)
        ).fetchall()
        changed = {run_id for run_id, _ in counts if run_id in run_ids}
        return changed, sum(count for run_id, count in counts if run_id not in run_ids)

    def _rows_of_no_run(self, run_ids: set[str]) -> int:
        """How many metric rows name a run the store does not have (a full read leaves them out)."""
        if not self._run_index:  # a store older than MLflow 2.x's index: one scan
            found = self._db.execute("SELECT run_uuid, count(*) FROM metrics GROUP BY run_uuid").fetchall()
            return sum(count for run_id, count in found if run_id not in run_ids)
        strangers = [run_id for (run_id,) in self._db.execute(_METRIC_RUNS) if run_id not in run_ids]
        return sum(
            self._db.execute("SELECT count(*) FROM metrics WHERE run_uuid = ?", (run_id,)).fetchone()[0]
            for run_id in strangers
        )

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        """Every raw metric row of these runs (duplicates and NaNs included; cleaning is the exporter's).

        Rows of no run are never returned: the catalog counts them.
        """
        import pyarrow as pa

        if not run_ids:
            return pa.table({})
        if self._curve_index:
            return self._read_by_curve(run_ids, progress)
        return self._read_by_scan(run_ids, progress)

    def _read_by_curve(self, run_ids: list[str], progress: Optional[ProgressFactory]) -> "pa.Table":
        """Curve by curve through MLflow's (run_uuid, key, step) index, in parallel halves of the runs.

        Each row comes back as (step, value, timestamp, is_nan): no run id or key string per point
        (reading those into Arrow was 40% of a full scan's time), and already in (run, key, step,
        rowid) order, so the cleaning has no strings to hash and nothing to sort. Which curve a row
        belongs to follows from the curves' lengths, counted in the same snapshot.
        The driver's batches are kept as the table's chunks, not concatenated: on this VM a page
        of fresh memory costs about 14 us, and the copy would touch 50 MB per million points.
        """
        import pyarrow as pa

        parts = [
            run_ids[len(run_ids) * part // READ_THREADS : len(run_ids) * (part + 1) // READ_THREADS]
            for part in range(READ_THREADS)
        ]
        parts = [part for part in parts if part]
        advance = progress(f"reading {len(run_ids):,} runs' metrics", len(parts)) if progress else None
        with ThreadPoolExecutor(len(parts)) as pool:
            read = list(pool.map(lambda part: self._curves_of(part, advance), parts))

        # Runs are coded in `run_ids` order and keys in name order, and the parts are consecutive
        # runs, so (run code, key code, step) never decreases along the rows.
        key_names = sorted({key for curves, _ in read for key in curves.column("key").to_pylist()})
        codes = _Codes(run_ids, key_names)
        schema = raw_schema_in_curve_order()
        batches = [
            batch for part, (curves, rows) in zip(parts, read) for batch in _batches(part, curves, rows, codes, schema)
        ]
        return pa.Table.from_batches(batches, schema=schema)

    def _curves_of(self, run_ids: list[str], advance) -> "tuple[pa.Table, pa.Table]":
        """(run number, key, length) of every curve of these runs, and their rows in curve order,
        through one connection and in one read transaction, so the lengths add up to the rows."""
        import pyarrow as pa

        from forgetlab.warehouse.arrow_arrays import array_from_python

        with self._connection(snapshot=True) as connection:
            curves = _query(
                connection,
                _CURVES.format(index=self._curve_index),
                pa.table(
                    {
                        "run_id": array_from_python(run_ids, pa.string()),
                        "run": array_from_python(list(range(len(run_ids))), pa.int64()),
                    }
                ),
            )
            rows = pa.table({})
            if curves.num_rows:
                keys = curves.column("key")
                runs = [run_ids[i] for i in curves.column("run").to_pylist()]
                rows = _query(
                    connection,
                    _CURVE_ROWS.format(index=self._curve_index),
                    pa.table(
                        {
                            "run_id": array_from_python(runs, pa.string()),
                            "key": keys.combine_chunks(),
                        }
                    ),
                )
        if advance is not None:
            advance(1)
        return curves, rows

    def _read_by_scan(self, run_ids: list[str], progress: Optional[ProgressFactory]) -> "pa.Table":
        """A store without the (run_uuid, key, step) index (written before MLflow 3.11): read the
        rows with their run ids and keys, by rowid ranges for every run or by run otherwise."""
        import pyarrow as pa

        if len(run_ids) >= self._run_count:
            edges = [self._max_rowid * part // READ_THREADS for part in range(READ_THREADS + 1)]
            ranges = [f"rowid > {low} AND rowid <= {high}" for low, high in zip(edges, edges[1:])]
            ranges[-1] = f"rowid > {edges[-2]}"  # and rows added since the catalog
            queries = [
                f"{_METRIC_SELECT} WHERE {where} AND run_uuid IN (SELECT run_uuid FROM runs)" for where in ranges
            ]
        else:
            chunks = [run_ids[start : start + IN_LIST] for start in range(0, len(run_ids), IN_LIST)]
            queries = [f"{_METRIC_SELECT} WHERE run_uuid IN ({quote_list(chunk)})" for chunk in chunks]
        advance = progress(f"reading {len(run_ids):,} runs' metrics", len(queries)) if progress else None

        def read(sql: str) -> "pa.Table":
            with self._connection() as connection:
                table = _query(connection, sql)
            if advance is not None:
                advance(1)
            return table

        with ThreadPoolExecutor(min(READ_THREADS, len(queries))) as pool:
            return pa.concat_tables(list(pool.map(read, queries)))

    @contextmanager
    def _connection(self, snapshot: bool = False):
        """An ADBC connection of its own (so parts can be read in parallel), read-only; with
        `snapshot`, its statements share one read transaction."""
        import adbc_driver_manager
        import adbc_driver_sqlite

        database = adbc_driver_sqlite.connect(self._uri)
        connection = adbc_driver_manager.AdbcConnection(database)
        try:
            # Read-only connections opened at once on a WAL store that no writer has open race to
            # recover its index ("database is locked"): wait for the lock as sqlite3 does (5 s).
            pragma = adbc_driver_manager.AdbcStatement(connection)
            try:
                pragma.set_sql_query(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                pragma.execute_update()
            finally:
                pragma.close()
            if snapshot:
                connection.set_options(**{"adbc.connection.autocommit": "false"})  # ADBC's standard option
            yield connection
        finally:
            connection.close()
            database.close()


class _Codes:
    """Dictionary codes of runs (in the order asked for) and keys (in name order), with their
    Arrow dictionaries."""

    def __init__(self, run_ids: list[str], key_names: list[str]):
        import pyarrow as pa

        from forgetlab.warehouse.arrow_arrays import array_from_python

        self.run = {run_id: code for code, run_id in enumerate(run_ids)}
        self.key = {key: code for code, key in enumerate(key_names)}
        self.run_dictionary = array_from_python(run_ids, pa.string())
        self.key_dictionary = array_from_python(key_names, pa.string())


def _batches(
    run_ids: list[str], curves: "pa.Table", rows: "pa.Table", codes: _Codes, schema: "pa.Schema"
) -> "list[pa.RecordBatch]":
    """One part's rows as raw record batches in curve order: each row's run and key codes repeat
    its curve's codes for the curve's length (the curves and rows of one snapshot)."""
    import numpy as np
    import pyarrow as pa

    from forgetlab.warehouse.arrow_arrays import array_of, numpy_of

    lengths = numpy_of(curves.column("n")) if curves.num_rows else np.zeros(0, dtype=np.int64)
    if int(lengths.sum()) != rows.num_rows:  # one read transaction per part: not expected
        raise UserError(
            f"the tracking store changed while it was read ({rows.num_rows} metric rows where its index "
            f"counted {int(lengths.sum())}): run the export again"
        )
    run_of_curve = [codes.run[run_ids[i]] for i in curves.column("run").to_pylist()]
    key_of_curve = [codes.key[key] for key in curves.column("key").to_pylist()]
    run_of_row = np.repeat(np.array(run_of_curve, dtype=np.int32), lengths)
    key_of_row = np.repeat(np.array(key_of_curve, dtype=np.int32), lengths)
    batches, start = [], 0
    for batch in rows.to_batches():
        end = start + batch.num_rows
        batches.append(
            pa.record_batch(
                [
                    pa.DictionaryArray.from_arrays(array_of(run_of_row[start:end], pa.int32()), codes.run_dictionary),
                    pa.DictionaryArray.from_arrays(array_of(key_of_row[start:end], pa.int32()), codes.key_dictionary),
                    batch.column("step"),
                    batch.column("value"),
                    batch.column("timestamp").view(pa.timestamp("ms")),
                    array_of(numpy_of(batch.column("is_nan")) != 0, pa.bool_()),
                ],
                schema=schema,
            )
        )
        start = end
    return batches


def _query(connection, sql: str, parameters: "Optional[pa.Table]" = None) -> "pa.Table":
    """One query into Arrow; with `parameters`, run once per parameter row, results concatenated."""
    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa

    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(BATCH_ROWS)})
        statement.set_sql_query(sql)
        if parameters is not None:
            statement.bind_stream(parameters.to_reader())
        stream, _ = statement.execute_query()
        return pa.RecordBatchReader._import_from_c(stream.address).read_all()
    finally:
        statement.close()
