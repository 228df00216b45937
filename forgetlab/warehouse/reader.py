"""Reading the warehouse file: a read-only connection, its tables, what the last export recorded.

Apart from `writer.py` so that queries and freshness checks import no write path, and so that an
export that finds nothing new reads only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import duckdb

from forgetlab.errors import UserError
from forgetlab.warehouse import schema


@dataclass
class Previous:
    """What the last export left: per-run signatures and the export metadata."""

    signatures: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    usable: bool = False  # False: no warehouse yet, or one of another schema version -> rebuild


def connect_read_only(db_path: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for reading, turning DuckDB's lock and format errors into one line."""
    try:
        return duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as error:
        message = str(error).splitlines()[0]
        if "lock" in message.lower():
            raise UserError(f"the warehouse {db_path} is open for writing by another process ({message})") from None
        raise UserError(f"cannot open the warehouse {db_path}: {message}; move it away or pass --db") from None


def table_names(
    connection: duckdb.DuckDBPyConnection, schema_name: str = "main", catalog: Optional[str] = None
) -> dict[str, str]:
    """name -> 'BASE TABLE' | 'VIEW' in one schema of one attached database."""
    catalog_filter = "AND table_catalog = $catalog" if catalog else "AND table_catalog = current_database()"
    params: dict[str, Any] = {"schema": schema_name}
    if catalog:
        params["catalog"] = catalog
    rows = connection.sql(
        f"SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = $schema {catalog_filter}",
        params=params,
    ).fetchall()
    return {name: kind for name, kind in rows}


def read_previous(db_path: Path) -> Previous:
    if not db_path.exists():
        return Previous()
    connection = connect_read_only(db_path)
    try:
        tables = table_names(connection)
        if "_export_meta" not in tables or "_export_state" not in tables:
            return Previous()
        meta = dict(connection.sql("SELECT key, value FROM _export_meta").fetchall())
        if meta.get("schema_version") != schema.SCHEMA_VERSION:
            return Previous(meta=meta)
        signatures = dict(connection.sql("SELECT run_id, signature FROM _export_state").fetchall())
        return Previous(signatures=signatures, meta=meta, usable=True)
    finally:
        connection.close()
