"""Read MLflow's backend store on PostgreSQL directly, read-only, with the ADBC PostgreSQL driver.

A team's `mlflow server --backend-store-uri postgresql://...` keeps the same tables as a SQLite
store (`experiments`, `runs`, `params`, `tags`, `metrics`). Given that URI, the export reads them
with `adbc-driver-postgresql`, which pulls rows with PostgreSQL's binary COPY straight into Arrow:
no server in between, no JSON, no Python object per point. The session is read-only
(`default_transaction_read_only`), so the exporter cannot change the store.

A run's signature covers its info, params, tags and (count, newest timestamp, highest step) of
its metric rows. `seq` (the tie-break between rows of one (run, key, step) with the same
timestamp) is the row's physical position (`ctid`), which is insertion order in MLflow's
append-only metrics table.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from forgetlab.errors import UserError
from forgetlab.warehouse.sources.base import Catalog, ProgressFactory, digest, key_value_digests, quote_list

if TYPE_CHECKING:
    import pyarrow as pa

IN_LIST = 500  # run ids per `run_uuid IN (...)` query
_SCHEME = re.compile(r"^(postgresql|postgres)(\+\w+)?://")
# ctid is (block, index): as one number it orders rows by where they were written.
_SEQ = "((ctid::text::point)[0]::bigint * 65536 + (ctid::text::point)[1]::bigint)"
_METRIC_SELECT = f"SELECT run_uuid AS run_id, key, step, value, timestamp, is_nan, {_SEQ} AS seq FROM metrics"


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
            tables = set(self._rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))
        except adbc_driver_manager.Error as error:
            raise UserError(f"cannot read the PostgreSQL store {self.description}: {_first_line(error)}") from None
        missing = {("experiments",), ("runs",), ("params",), ("tags",), ("metrics",)} - tables
        if missing:
            self.close()
            raise UserError(f"{self.description} is not an MLflow backend store (no table {sorted(missing)[0][0]!r})")
        self._run_count = 0

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
                "FROM experiments ORDER BY experiment_id")
            runs = self._rows(
                "SELECT run_uuid, name, experiment_id::text, status, lifecycle_stage, start_time, end_time, user_id, "
                "artifact_uri FROM runs ORDER BY start_time, run_uuid")
            params = self._rows("SELECT run_uuid, key, value FROM params ORDER BY run_uuid, key")
            tags = self._rows("SELECT run_uuid, key, value FROM tags ORDER BY run_uuid, key")
            counts = self._rows("SELECT run_uuid, count(*), max(timestamp), max(step) FROM metrics GROUP BY run_uuid")
        finally:
            self._update("COMMIT")
        self._run_count = len(runs)
        param_digests, tag_digests = key_value_digests(params), key_value_digests(tags)
        metric_counts = {run_id: rest for run_id, *rest in counts}
        signatures = {
            row[0]: digest((row[1:], metric_counts.get(row[0]), param_digests.get(row[0]), tag_digests.get(row[0])))
            for row in runs
        }
        run_ids = set(signatures)
        orphans = sum(rest[0] for run_id, rest in metric_counts.items() if run_id not in run_ids)
        return Catalog(
            experiments=experiments, runs=runs, params=params, tags=tags, signatures=signatures,
            skipped_points=orphans,
            notes=[f"{orphans} metric rows belong to no run in the store and were skipped"] if orphans else [],
        )

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        """Every raw metric row of these runs (one sequential scan when every run is read)."""
        import pyarrow as pa

        if not run_ids:
            return pa.table({})
        if len(run_ids) >= self._run_count:
            queries = [f"{_METRIC_SELECT} WHERE run_uuid IN (SELECT run_uuid FROM runs)"]  # orphans stay out
        else:
            chunks = [run_ids[start:start + IN_LIST] for start in range(0, len(run_ids), IN_LIST)]
            queries = [f"{_METRIC_SELECT} WHERE run_uuid IN ({quote_list(chunk)})" for chunk in chunks]
        advance = progress(f"reading {len(run_ids):,} runs' metrics", len(queries)) if progress else None
        parts = []
        for sql in queries:
            parts.append(self._arrow(sql))
            if advance is not None:
                advance(1)
        return pa.concat_tables(parts)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
