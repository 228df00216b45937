"""Turn raw metric rows into the warehouse's: one row per (run, key, step), NaN as NULL.

MLflow keeps every row it is given, so the same (run, key, step) appears twice after a resumed
run re-logs a step; the later one (by timestamp, then by write order) is what the run ended with.
MLflow stores a NaN as value 0 with `is_nan = 1`: keeping the 0 would put a fake point on a
curve, so the value becomes NULL and the flag stays. Nothing is dropped without being counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


CLEAN_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("key", pa.string()),
    ("step", pa.int64()),
    ("value", pa.float64()),
    ("timestamp", pa.timestamp("ms")),
    ("is_nan", pa.bool_()),
])


@dataclass(frozen=True)
class Cleaned:
    table: pa.Table  # run_id, key, step, value (NULL for NaN), timestamp (ms), is_nan; sorted by run, key, step
    duplicates_by_run: dict[str, int]
    nan_by_run: dict[str, int]

    @property
    def duplicates(self) -> int:
        return sum(self.duplicates_by_run.values())

    @property
    def nan_points(self) -> int:
        return sum(self.nan_by_run.values())


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    encoded = column.combine_chunks()
    if not pa.types.is_dictionary(encoded.type):
        encoded = encoded.dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def clean_metrics(raw: pa.Table) -> Cleaned:
    """Deduplicate (run, key, step) keeping the latest timestamp (ties: the later `seq`); NaN -> NULL."""
    if raw.num_rows == 0:
        return Cleaned(CLEAN_SCHEMA.empty_table(), {}, {})
    run, run_names = _codes(raw.column("run_id"))
    key, _ = _codes(raw.column("key"))
    step = raw.column("step").to_numpy()
    timestamp = raw.column("timestamp").to_numpy()
    seq = raw.column("seq").to_numpy()
    is_nan = raw.column("is_nan").to_numpy(zero_copy_only=False)

    order = np.lexsort((seq, timestamp, step, key, run))  # last sort key is the primary one
    run_sorted, key_sorted, step_sorted = run[order], key[order], step[order]
    last_of_group = np.ones(len(order), dtype=bool)
    last_of_group[:-1] = (
        (run_sorted[1:] != run_sorted[:-1]) | (key_sorted[1:] != key_sorted[:-1]) | (step_sorted[1:] != step_sorted[:-1])
    )
    kept = order[last_of_group]

    dropped = np.bincount(run_sorted[~last_of_group], minlength=len(run_names))
    nan_kept = np.bincount(run[kept][is_nan[kept]], minlength=len(run_names))
    table = raw.take(pa.array(kept)).drop_columns(["seq"])
    nan_mask = table.column("is_nan")
    table = table.set_column(
        table.schema.get_field_index("value"), "value", pc.if_else(nan_mask, pa.scalar(None, pa.float64()), table.column("value"))
    )
    table = table.set_column(
        table.schema.get_field_index("timestamp"), "timestamp", table.column("timestamp").cast(pa.timestamp("ms"))
    )
    return Cleaned(
        table,
        {name: int(n) for name, n in zip(run_names, dropped) if n},
        {name: int(n) for name, n in zip(run_names, nan_kept) if n},
    )
