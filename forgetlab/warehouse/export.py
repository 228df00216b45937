"""`forgetlab export`: copy an MLflow tracking store into the DuckDB warehouse, incrementally.

Only runs that changed since the last export (status, end time, name, params, tags, or metric
rows: rows above the last export's rowid in SQLite, a changed count or newest point elsewhere)
have their histories re-read; the small tables are read in full every time. The write is atomic (see `writer.py`), and the one-line summary says what was
deduplicated, turned into NULL or skipped, so no point disappears silently.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from forgetlab.errors import UserError
from forgetlab.locations import default_tracking_uri, default_warehouse_path
from forgetlab.warehouse import schema
from forgetlab.warehouse.reader import Previous, read_previous
from forgetlab.warehouse.sources import Catalog, ProgressFactory, Source, open_source

if TYPE_CHECKING:
    import pyarrow as pa

    from forgetlab.warehouse.cleaning import Cleaned

# pyarrow, numpy, the cleaning and the writer are imported only once there is something to write:
# an export that finds nothing new is then mostly interpreter start-up.


@dataclass
class ExportReport:
    """What an export did, for the summary line and for tests."""

    source: str
    db_path: Path
    runs: int = 0
    runs_new: int = 0
    runs_changed: int = 0
    runs_removed: int = 0
    points_read: int = 0
    points_written: int = 0
    duplicates_dropped: int = 0
    nan_points: int = 0
    skipped: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.up_to_date:
            line = (
                f"warehouse {self.db_path} is up to date with {self.source}: {self.runs:,} runs, "
                f"nothing new ({self.seconds:.2f} s)"
            )
        else:
            line = (
                f"exported {self.runs:,} runs ({self.runs_new:,} new, {self.runs_changed:,} changed, "
                f"{self.runs_removed:,} removed) from {self.source} to {self.db_path}: "
                f"{self.points_read:,} points read, {self.points_written:,} written, "
                f"{self.duplicates_dropped:,} duplicate (run, key, step) rows dropped keeping the latest, "
                f"{self.nan_points:,} NaN kept as NULL, {self.skipped:,} skipped ({self.seconds:.2f} s)"
            )
        return "; ".join([line, *self.notes])


def export_warehouse(
    tracking_uri: Optional[str] = None,
    db_path: Optional[Path] = None,
    *,
    full: bool = False,
    progress: Optional[ProgressFactory] = None,
) -> ExportReport:
    """Bring the warehouse at `db_path` up to date with the store at `tracking_uri`."""
    started = time.perf_counter()
    uri = tracking_uri or default_tracking_uri()
    db = Path(db_path) if db_path is not None else default_warehouse_path()
    previous = read_previous(db)
    source = open_source(uri)
    try:
        report = _export(source, db, previous, full=full, progress=progress, started=started)
    finally:
        source.close()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Plan:
    """Which runs an export reads again, from the catalog against the last export."""

    new: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def to_read(self) -> list[str]:
        return self.new + self.changed


def _plan(catalog: Catalog, old: dict[str, str]) -> _Plan:
    rows_changed = catalog.metrics_changed or set()
    return _Plan(
        new=[run_id for run_id in catalog.signatures if run_id not in old],
        changed=[
            run_id
            for run_id, sig in catalog.signatures.items()
            if run_id in old and (old[run_id] != sig or run_id in rows_changed)
        ],
        removed=[run_id for run_id in old if run_id not in catalog.signatures],
    )


def _export(
    source: Source, db: Path, previous: Previous, *, full: bool, progress: Optional[ProgressFactory], started: float
) -> ExportReport:
    incremental = previous.usable and not full
    catalog = _reading(source, source.read_catalog, previous.meta.get("metrics_watermark", "") if incremental else "")
    report = ExportReport(
        source=source.description, db_path=db, runs=len(catalog.signatures), notes=list(catalog.notes)
    )
    report.skipped = catalog.skipped_points
    plan = _plan(catalog, previous.signatures if incremental else {})
    meta = _meta(source, catalog)

    experiments_unchanged = previous.meta.get("experiments_signature") == meta["experiments_signature"]
    if incremental and not (plan.to_read or plan.removed) and experiments_unchanged:
        report.up_to_date = True
        moved = {
            key: meta[key] for key in ("source_mtime_ns", "metrics_watermark") if previous.meta.get(key) != meta[key]
        }
        if moved:
            update_meta_in_place(db, moved)
        return report

    from forgetlab.warehouse.cleaning import clean_metrics
    from forgetlab.warehouse.writer import check_writable, write_atomically

    check_writable(db)  # before the long read, not after it
    raw = _reading(source, source.read_metrics, plan.to_read, progress)
    cleaned = clean_metrics(raw, plan.to_read)
    if cleaned.skipped:
        report.skipped += cleaned.skipped
        report.notes.append(f"{cleaned.skipped} metric rows belong to no run in the store and were skipped")
    report.runs_new, report.runs_changed, report.runs_removed = len(plan.new), len(plan.changed), len(plan.removed)
    report.points_read = raw.num_rows - cleaned.skipped
    report.points_written = cleaned.table.num_rows
    report.duplicates_dropped = cleaned.duplicates
    report.nan_points = cleaned.nan_points
    write_atomically(db, _batch(catalog, cleaned, plan, meta, report, started), incremental=incremental)
    return report


def _reading(source: Source, read, *args):
    """`read(*args)`; a failure on a store at a schema revision the reader was not tested on says so in its one line."""
    try:
        return read(*args)
    except Exception as error:
        if source.schema_note is None:
            raise
        problem = (
            error.message
            if isinstance(error, UserError)
            else f"cannot read {source.description}: {str(error).splitlines()[0]}"
        )
        raise UserError(f"{problem}; {source.schema_note}") from None


def update_meta_in_place(db: Path, meta: dict[str, str]) -> bool:
    from forgetlab.warehouse.writer import update_meta_in_place as update

    return update(db, meta)


def _batch(
    catalog: Catalog, cleaned: "Cleaned", plan: _Plan, meta: dict[str, str], report: ExportReport, started: float
):
    """What the writer writes: the small tables, the cleaned rows, per-run state and the log row."""
    from forgetlab.warehouse.arrow_arrays import table_from_python
    from forgetlab.warehouse.writer import Batch

    to_read = plan.to_read
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    written = cleaned.points_by_run
    columns = {
        "run_id": to_read,
        "signature": [catalog.signatures[r] for r in to_read],
        "points": [written.get(r, 0) for r in to_read],
        "duplicates": [cleaned.duplicates_by_run.get(r, 0) for r in to_read],
        "nan_points": [cleaned.nan_by_run.get(r, 0) for r in to_read],
        "exported_at": [(now - _dt.datetime(1970, 1, 1)) // _dt.timedelta(microseconds=1)] * len(to_read),
    }
    schema = _state_schema()
    state = table_from_python([columns[field.name] for field in schema], schema)
    tables = catalog.tables()
    return Batch(
        experiments=tables["experiments"],
        runs=tables["runs"],
        params=tables["params"],
        tags=tables["tags"],
        metrics=cleaned.table,
        replace_runs=to_read + plan.removed,
        state=state,
        meta=meta,
        log={
            "exported_at": now,
            "source": report.source,
            "runs": report.runs,
            "runs_new": report.runs_new,
            "runs_changed": report.runs_changed,
            "runs_removed": report.runs_removed,
            "points_read": report.points_read,
            "points_written": report.points_written,
            "duplicates_dropped": report.duplicates_dropped,
            "nan_points": report.nan_points,
            "skipped": report.skipped,
            "seconds": time.perf_counter() - started,
        },
    )


def _state_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema(
        [
            ("run_id", pa.string()),
            ("signature", pa.string()),
            ("points", pa.int64()),
            ("duplicates", pa.int64()),
            ("nan_points", pa.int64()),
            ("exported_at", pa.timestamp("us")),
        ]
    )


def _meta(source: Source, catalog: Catalog) -> dict[str, str]:
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "source": source.description,
        "source_mtime_ns": "" if catalog.source_mtime_ns is None else str(catalog.source_mtime_ns),
        "experiments_signature": catalog.experiments_signature(),
        "metrics_watermark": catalog.watermark,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
