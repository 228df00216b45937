"""Read MLflow's backend store on PostgreSQL directly, read-only, with the ADBC PostgreSQL driver.

A team's `mlflow server --backend-store-uri postgresql://...` keeps the same tables as a SQLite
store (`experiments`, `runs`, `params`, `tags`, `metrics`). Given that URI, the export reads them
with `adbc-driver-postgresql`, which pulls rows with PostgreSQL's binary COPY straight into Arrow:
no server in between, no JSON, no Python object per point. The session is read-only
(`default_transaction_read_only`), so the exporter cannot change the store.

A run's signature covers its info, params, tags and (count, newest timestamp, highest step) of
its metric rows.

The histories come back with each row's run and key as small integer codes, joined in on the
server, not as strings: the 32-byte run ids were most of what travelled and what the cleaning
hashed (a read of 1.2 M points went from 1.6-1.9 s to 0.8-1.0 s). A key not in MLflow's
`latest_metrics` (which MLflow keeps for every key a run logs) still comes back, as a string.
`seq` (the tie-break between rows of one (run, key, step) with the same timestamp) is the arrival
order, which within a (run, key, step) is the rows' physical order, i.e. insertion order in
MLflow's append-only metrics table: the session turns off parallel and synchronized sequential
scans and merge joins, so rows come from one sequential scan in block order (or, for a few runs,
a B-tree or bitmap scan, which also return equal keys in heap order) through hash joins that keep
the order of the scanned side. (Computing each row's `ctid` as a number instead cost 0.5 s of
server time per million rows.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from forgetlab.errors import UserError
from forgetlab.warehouse.sources.base import (
    Catalog,
    ProgressFactory,
    coded_metric_schema,
    digest,
    key_value_digests,
    quote_list,
)
from forgetlab.warehouse.sources.revisions import untested_note

if TYPE_CHECKING:
    import pyarrow as pa

_SCHEME = re.compile(r"^(postgresql|postgres)(\+\w+)?://")
# Rows of one (run, key, step) must arrive in the order they were written (see the module notes).
_ORDERED_SCANS = (
    "SET max_parallel_workers_per_gather = 0",
    "SET synchronize_seqscans = off",
    "SET enable_mergejoin = off",
)
# The rows of the runs in ARRAY[...] (?runs), with run and key codes (positions in the arrays, from
# 0); a key missing from ARRAY[...] (?keys) comes back as a string in `stray_key`.
_METRIC_ROWS = """
SELECT (r.code - 1)::int4 AS run, (k.code - 1)::int4 AS key_code, CASE WHEN k.code IS NULL THEN m.key END AS stray_key,
       m.step, m.value, m.timestamp, m.is_nan
FROM metrics m
JOIN unnest(ARRAY[{runs}]::text[]) WITH ORDINALITY AS r(run_uuid, code) ON r.run_uuid = m.run_uuid
LEFT JOIN unnest(ARRAY[{keys}]::text[]) WITH ORDINALITY AS k(key, code) ON k.key = m.key"""


def is_postgres_uri(uri: str) -> bool:
    return bool(_SCHEME.match(uri))


def libpq_uri(uri: str) -> str:
    """`postgresql+psycopg://...` (SQLAlchemy's form, what MLflow takes) -> `postgresql://...` (libpq's)."""
    return _SCHEME.sub("postgresql://", uri, count=1)


class PostgresSource:
    """A read-only view of one MLflow backend store on PostgreSQL."""

    def __init__(self, tracking_uri: str):
        import adbc_driver_manager
        import adbc_driver_postgresql

        from forgetlab.tracking import scrub_secrets

        self.description = scrub_secrets(tracking_uri)
        try:
            self._database = adbc_driver_postgresql.connect(libpq_uri(tracking_uri))
            self._connection = adbc_driver_manager.AdbcConnection(self._database)
            self._update("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            for setting in _ORDERED_SCANS:
                self._update(setting)
            tables = set(
                self._rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            )
        except adbc_driver_manager.Error as error:
            raise UserError(f"cannot read the PostgreSQL store {self.description}: {_first_line(error)}") from None
        missing = {("experiments",), ("runs",), ("params",), ("tags",), ("metrics",)} - tables
        if missing:
            self.close()
            raise UserError(f"{self.description} is not an MLflow backend store (no table {sorted(missing)[0][0]!r})")
        revisions = (
            [row[0] for row in self._rows("SELECT version_num FROM alembic_version")]
            if ("alembic_version",) in tables
            else []
        )
        self.schema_note = untested_note(revisions)

    def close(self) -> None:
        for handle in ("_connection", "_database"):
            if getattr(self, handle, None) is not None:
                getattr(self, handle).close()
                setattr(self, handle, None)

    def _update(self, sql: str) -> None:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self._connection)
        try:
            statement.set_sql_query(sql)
            statement.execute_update()
        finally:
            statement.close()

    def _arrow(self, sql: str) -> "pa.Table":
        import adbc_driver_manager
        import pyarrow as pa

        statement = adbc_driver_manager.AdbcStatement(self._connection)
        try:
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            return pa.RecordBatchReader._import_from_c(stream.address).read_all()
        except adbc_driver_manager.Error as error:
            raise UserError(f"reading the PostgreSQL store {self.description}: {_first_line(error)}") from None
        finally:
            statement.close()

    def _rows(self, sql: str) -> list[tuple]:
        table = self._arrow(sql)
        return list(zip(*(column.to_pylist() for column in table.columns))) if table.num_rows else []

    def read_catalog(self, watermark: str = "") -> Catalog:
        self._update("BEGIN ISOLATION LEVEL REPEATABLE READ")  # one snapshot of all the small tables
        try:
            experiments = self._rows(
                "SELECT experiment_id::text, name, artifact_location, lifecycle_stage, creation_time, last_update_time "
                "FROM experiments ORDER BY experiment_id"
            )
            runs = self._rows(
                "SELECT run_uuid, name, experiment_id::text, status, lifecycle_stage, start_time, end_time, user_id, "
                "artifact_uri FROM runs ORDER BY start_time, run_uuid"
            )
            params = self._rows("SELECT run_uuid, key, value FROM params ORDER BY run_uuid, key")
            tags = self._rows("SELECT run_uuid, key, value FROM tags ORDER BY run_uuid, key")
            counts = self._rows("SELECT run_uuid, count(*), max(timestamp), max(step) FROM metrics GROUP BY run_uuid")
        finally:
            self._update("COMMIT")
        param_digests, tag_digests = key_value_digests(params), key_value_digests(tags)
        metric_counts = {run_id: rest for run_id, *rest in counts}
        signatures = {
            row[0]: digest((row[1:], metric_counts.get(row[0]), param_digests.get(row[0]), tag_digests.get(row[0])))
            for row in runs
        }
        run_ids = set(signatures)
        orphans = sum(rest[0] for run_id, rest in metric_counts.items() if run_id not in run_ids)
        return Catalog(
            experiments=experiments,
            runs=runs,
            params=params,
            tags=tags,
            signatures=signatures,
            skipped_points=orphans,
            notes=([f"{orphans} metric rows belong to no run in the store and were skipped"] if orphans else [])
            + ([self.schema_note] if self.schema_note else []),
        )

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        """Every raw metric row of these runs (rows of no run stay out: the catalog counts them)."""
        import numpy as np
        import pyarrow as pa

        from forgetlab.warehouse.arrow_arrays import array_from_python, array_of, numpy_of

        if not run_ids:
            return pa.table({})
        advance = progress(f"reading {len(run_ids):,} runs' metrics", 1) if progress else None
        keys = [key for (key,) in self._rows("SELECT DISTINCT key FROM latest_metrics ORDER BY key")]
        rows = self._arrow(_METRIC_ROWS.format(runs=quote_list(run_ids), keys=quote_list(keys) or "NULL"))
        if advance is not None:
            advance(1)
        strays = sorted(set(rows.column("stray_key").drop_null().to_pylist())) if rows.num_rows else []
        run_dictionary = array_from_python(run_ids, pa.string())
        key_dictionary = array_from_python(keys + strays, pa.string())
        stray_code = {key: len(keys) + index for index, key in enumerate(strays)}
        schema = coded_metric_schema()
        batches, position = [], 0
        for batch in rows.to_batches():
            key_code = batch.column("key_code")
            if key_code.null_count:  # a key missing from latest_metrics: code it after the others
                codes = numpy_of(key_code.fill_null(0)).copy()
                missing = np.flatnonzero(~numpy_of(key_code.is_valid()))
                stray = batch.column("stray_key").to_pylist()
                codes[missing] = [stray_code[stray[i]] for i in missing]
                key_code = array_of(codes, pa.int32())
            batches.append(
                pa.record_batch(
                    [
                        pa.DictionaryArray.from_arrays(batch.column("run"), run_dictionary),
                        pa.DictionaryArray.from_arrays(key_code, key_dictionary),
                        batch.column("step"),
                        batch.column("value"),
                        batch.column("timestamp"),
                        batch.column("is_nan"),
                        array_of(np.arange(position, position + batch.num_rows, dtype=np.int64), pa.int64()),
                    ],
                    schema=schema,
                )
            )
            position += batch.num_rows
        return pa.Table.from_batches(batches, schema=schema)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
