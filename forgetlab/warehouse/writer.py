"""Writing the warehouse file: every export replaces it atomically.

Every export writes a *copy* of the database and swaps it in with `os.replace`, so a crash,
Ctrl-C or `kill -9` at any point leaves the previous file whole, and readers that opened the old
file keep reading it. Tables the exporter does not own (the law fits' `fits`, a user's own) ride
along in the copy, or are copied over when the file is rebuilt from scratch.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import duckdb
import pyarrow as pa

from forgetlab.errors import UserError
from forgetlab.utils.processes import local_process_alive
from forgetlab.warehouse import schema
from forgetlab.warehouse.arrow_arrays import array_from_python
from forgetlab.warehouse.reader import connect_read_only, table_names  # noqa: F401 (connect_read_only: old import path)


def _wal(path: Path) -> Path:
    return Path(f"{path}.wal")


def update_meta_in_place(db_path: Path, meta: dict[str, str]) -> bool:
    """Record metadata without rewriting the file (nothing else changed); best effort under locks."""
    try:
        connection = duckdb.connect(str(db_path))
    except duckdb.Error:
        return False  # someone is reading it; the next export records it instead
    try:
        connection.execute("BEGIN")
        for key, value in meta.items():
            connection.execute("DELETE FROM _export_meta WHERE key = ?", [key])
            connection.execute("INSERT INTO _export_meta VALUES (?, ?)", [key, value])
        connection.execute("COMMIT")
        return True
    finally:
        connection.close()


def _remove_stale_temporaries(db_path: Path) -> None:
    """Temp copies left by an export that was killed (its process is gone) are garbage."""
    for leftover in db_path.parent.glob(f"{db_path.name}.export-*.tmp*"):
        pid_text = leftover.name[len(db_path.name) + len(".export-") :].split(".", 1)[0]
        if not local_process_alive(pid_text):
            leftover.unlink(missing_ok=True)


@dataclass
class Batch:
    """What one export writes."""

    experiments: pa.Table
    runs: pa.Table
    params: pa.Table
    tags: pa.Table
    metrics: pa.Table  # cleaned rows of the runs in `replace_runs`
    replace_runs: list[str]  # runs whose metrics are (re)written: new, changed, removed
    state: pa.Table  # _export_state rows for runs in replace_runs that still exist
    meta: dict[str, str]
    log: dict[str, Any]


def check_writable(db_path: Path) -> None:
    """One line when the warehouse cannot be written: the copy and the swap need its folder writable."""
    from forgetlab.utils.writable import why_not_writable

    problem = why_not_writable(db_path)
    if problem:
        raise UserError(f"cannot write the warehouse {db_path} ({problem}); pass --db PATH in a writable folder")


def write_atomically(db_path: Path, batch: Batch, *, incremental: bool) -> None:
    """Write `batch` into a copy of the warehouse (or a fresh file) and swap it in."""
    check_writable(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(db_path)
    temporary = db_path.with_name(f"{db_path.name}.export-{os.getpid()}.tmp")
    connection: Optional[duckdb.DuckDBPyConnection] = None
    try:
        if incremental:
            shutil.copyfile(db_path, temporary)
            if _wal(db_path).exists():  # uncheckpointed changes (e.g. a fit written just now)
                shutil.copyfile(_wal(db_path), _wal(temporary))
        connection = duckdb.connect(str(temporary))
        if not incremental and db_path.exists():
            _carry_foreign_tables(connection, db_path)
        _fill(connection, batch)
        connection.execute("CHECKPOINT")
        connection.close()
        connection = None
        _wal(db_path).unlink(missing_ok=True)  # belongs to the old file; would corrupt the new one
        _swap_in(temporary, db_path)
    finally:
        if connection is not None:
            connection.close()
        temporary.unlink(missing_ok=True)
        _wal(temporary).unlink(missing_ok=True)


def _carry_foreign_tables(connection: duckdb.DuckDBPyConnection, old_path: Path) -> None:
    """On a rebuild, copy the tables other code wrote (e.g. `fits`) from the old file."""
    try:
        connection.execute(f"ATTACH '{_quote(old_path)}' AS previous (READ_ONLY)")
    except duckdb.Error as error:
        raise UserError(f"cannot read the existing warehouse {old_path}: {str(error).splitlines()[0]}") from None
    try:
        for name, kind in table_names(connection, catalog="previous").items():
            if kind == "BASE TABLE" and name not in schema.OWNED_TABLES:
                connection.execute(f'CREATE TABLE main."{name}" AS SELECT * FROM previous.main."{name}"')
    finally:
        connection.execute("DETACH previous")


def _fill(connection: duckdb.DuckDBPyConnection, batch: Batch) -> None:
    connection.execute(schema.TABLES_DDL)
    connection.execute("BEGIN")
    connection.register("_src_experiments", batch.experiments)
    connection.register("_src_runs", batch.runs)
    connection.register("_src_params", batch.params)
    connection.register("_src_tags", batch.tags)
    connection.register("_src_metrics", batch.metrics)
    connection.register("_src_state", batch.state)
    connection.register("_src_replace", pa.table({"run_id": array_from_python(batch.replace_runs, pa.string())}))

    for table in ("experiments", "params", "tags"):
        connection.execute(f"DELETE FROM {table}")
        connection.execute(f"INSERT INTO {table} SELECT * FROM _src_{table}")
    connection.execute(f"CREATE OR REPLACE TABLE runs AS {schema.runs_select('_src_runs', '_src_params', '_src_tags')}")
    connection.execute("DELETE FROM metrics WHERE run_id IN (SELECT run_id FROM _src_replace)")
    connection.execute("INSERT INTO metrics SELECT run_id, key, step, value, timestamp, is_nan FROM _src_metrics")
    connection.execute("DELETE FROM _export_state WHERE run_id IN (SELECT run_id FROM _src_replace)")
    connection.execute(
        "INSERT INTO _export_state SELECT run_id, signature, points, duplicates, nan_points, exported_at FROM _src_state"
    )
    connection.execute("DELETE FROM _export_meta")
    connection.executemany("INSERT INTO _export_meta VALUES (?, ?)", [[k, v] for k, v in batch.meta.items()])
    columns = ", ".join(batch.log)
    placeholders = ", ".join("?" for _ in batch.log)
    connection.execute(f"INSERT INTO _export_log ({columns}) VALUES ({placeholders})", list(batch.log.values()))
    for statement in schema.views_ddl():
        connection.execute(statement)
    connection.execute("COMMIT")
    for name in (
        "_src_experiments",
        "_src_runs",
        "_src_params",
        "_src_tags",
        "_src_metrics",
        "_src_state",
        "_src_replace",
    ):
        connection.unregister(name)


def _swap_in(temporary: Path, target: Path) -> None:
    """The one atomic step: rename the finished copy over the target, then make the rename durable."""
    os.replace(temporary, target)
    _fsync_directory(target.parent)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
