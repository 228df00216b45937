"""Read an MLflow SQLite tracking store directly, read-only, with the standard `sqlite3` module.

Why not MLflow's client: it builds an ORM object per metric point and answers one run and key
per call (mlflow #7365); why not DuckDB's sqlite extension: it needs a download. The schema read
here (`experiments`, `runs`, `params`, `tags`, `metrics`, `latest_metrics`) has been stable
across MLflow 2.x-3.x.

Speed comes from not creating Python strings per point: histories are read one run at a time
(the `run_uuid` index), the metric key comes back as a small integer via a CASE over the keys in
`latest_metrics`, and rows stream straight into a numpy record array.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa

from forgetlab.errors import UserError
from forgetlab.warehouse.freshness import store_mtime_ns
from forgetlab.warehouse.source import Catalog, ProgressFactory, digest, key_value_digests

_ROW = np.dtype([("key", "i4"), ("step", "i8"), ("value", "f8"), ("timestamp", "i8"), ("is_nan", "i1"), ("seq", "i8")])
_MAX_CASE_KEYS = 500  # beyond this many distinct keys, fall back to reading key text per row


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
        self._db = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, isolation_level=None)
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"experiments", "runs", "params", "tags", "metrics", "latest_metrics"} - tables
        if missing:
            self._db.close()
            raise UserError(f"{database} is not an MLflow tracking store (no table {sorted(missing)[0]!r})")
        self._keys: list[str] = []

    def close(self) -> None:
        self._db.close()

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def read_catalog(self) -> Catalog:
        mtime = store_mtime_ns(self.path)  # taken first: a write during the read makes the next check stale
        db = self._db
        db.execute("BEGIN")  # one consistent snapshot of the small tables
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
            # count and max(rowid) come from the run_uuid index alone: any insert or delete changes them.
            counts = db.execute("SELECT run_uuid, count(*), max(rowid) FROM metrics GROUP BY run_uuid").fetchall()
            self._keys = [row[0] for row in db.execute("SELECT DISTINCT key FROM latest_metrics ORDER BY key")]
        finally:
            db.execute("COMMIT")

        param_digests = key_value_digests(params)
        tag_digests = key_value_digests(tags)
        metric_counts = {run_id: (count, max_rowid) for run_id, count, max_rowid in counts}
        run_ids = {row[0] for row in runs}
        signatures = {
            row[0]: digest((row[1:], metric_counts.get(row[0]), param_digests.get(row[0]), tag_digests.get(row[0])))
            for row in runs
        }
        orphans = sum(count for run_id, (count, _) in metric_counts.items() if run_id not in run_ids)
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
        )

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> pa.Table:
        """Every raw metric row of these runs (duplicates and NaNs included; cleaning is the exporter's)."""
        advance = progress(f"reading {len(run_ids):,} runs' metrics", len(run_ids)) if progress and run_ids else None
        keys = list(self._keys)
        key_ids = {key: index for index, key in enumerate(keys)}
        use_case = 0 < len(keys) <= _MAX_CASE_KEYS
        case = "CASE key " + " ".join("WHEN ? THEN ?" for _ in keys) + " ELSE -1 END" if use_case else "-1"
        case_args: list[object] = [item for index, key in enumerate(keys) for item in (key, index)] if use_case else []
        fast = f"SELECT {case}, step, value, timestamp, is_nan, rowid FROM metrics WHERE run_uuid = ?"
        slow = "SELECT key, step, value, timestamp, is_nan, rowid FROM metrics WHERE run_uuid = ?"

        parts: list[np.ndarray] = []
        lengths: list[int] = []
        for run_id in run_ids:
            rows = np.fromiter(self._db.execute(fast, (*case_args, run_id)), dtype=_ROW)
            if (rows["key"] < 0).any():  # a key latest_metrics does not know: read its text
                text_rows = self._db.execute(slow, (run_id,)).fetchall()
                rows = np.empty(len(text_rows), dtype=_ROW)
                for index, (key, *rest) in enumerate(text_rows):
                    if key not in key_ids:
                        key_ids[key] = len(keys)
                        keys.append(key)
                    rows[index] = (key_ids[key], *rest)
            parts.append(rows)
            lengths.append(len(rows))
            if advance is not None:
                advance(1)

        rows = np.concatenate(parts) if parts else np.empty(0, dtype=_ROW)
        run_index = np.repeat(np.arange(len(run_ids), dtype=np.int32), lengths)
        return pa.table(
            {
                "run_id": pa.DictionaryArray.from_arrays(pa.array(run_index), pa.array(run_ids, pa.string())),
                "key": pa.DictionaryArray.from_arrays(pa.array(rows["key"]), pa.array(keys, pa.string())),
                "step": pa.array(rows["step"]),
                "value": pa.array(rows["value"]),
                "timestamp": pa.array(rows["timestamp"]),
                "is_nan": pa.array(rows["is_nan"].astype(bool)),
                "seq": pa.array(rows["seq"]),
            }
        )

