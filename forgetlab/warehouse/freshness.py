"""Is the warehouse behind its SQLite tracking store?

The export records the store's mtime (taken *before* reading, so a run logging during the export
makes the next check stale); a query compares it with the store's mtime now. Only a warehouse
exported from this same store is compared: one exported from a server, or from another store,
is never silently replaced by a local export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from forgetlab.locations import sqlite_path
from forgetlab.warehouse.reader import connect_read_only, table_names


def store_mtime_ns(database: Path) -> Optional[int]:
    """Last modification of a SQLite store, counting its write-ahead log if it holds anything.

    An empty log is ignored: opening a WAL-mode store (even read-only, as the export does)
    creates one, which is no change to the data and must not make the warehouse look stale.
    """
    times = [database.stat().st_mtime_ns] if database.exists() else []
    log = Path(f"{database}-wal")
    try:
        stat = log.stat()
    except FileNotFoundError:
        stat = None
    if stat is not None and stat.st_size > 0:
        times.append(stat.st_mtime_ns)
    return max(times) if times else None


def stale_reason(tracking_uri: str, db_path: Path) -> Optional[str]:
    """Why the warehouse should be re-exported before querying, or None if it need not be."""
    database = sqlite_path(tracking_uri)
    if database is None or not database.is_file():
        return None
    database = database.expanduser().resolve()
    if not db_path.exists():
        return f"there is no warehouse at {db_path} yet"
    connection = connect_read_only(db_path)
    try:
        if "_export_meta" not in table_names(connection):
            return f"{db_path} holds no export yet"
        meta = dict(connection.sql("SELECT key, value FROM _export_meta").fetchall())
    finally:
        connection.close()
    if meta.get("source") != f"sqlite:///{database}":
        return None
    if meta.get("source_mtime_ns") != str(store_mtime_ns(database)):
        return f"the tracking store {database} changed after the last export"
    return None
