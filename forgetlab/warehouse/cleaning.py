"""Turn raw metric rows into the warehouse's: one row per (run, key, step), NaN as NULL.

MLflow keeps every row it is given, so the same (run, key, step) appears twice after a resumed
run re-logs a step; the later one (by timestamp, then by write order) is what the run ended with.
MLflow stores a NaN as value 0 with `is_nan = 1`: keeping the 0 would put a fake point on a
curve, so the value becomes NULL and the flag stays. Nothing is dropped without being counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import pyarrow as pa

from forgetlab.warehouse.arrow_arrays import array_of, numpy_of


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
    skipped: int = 0  # rows of runs not asked for (rows of no run, from a read of the whole table)

    @property
    def duplicates(self) -> int:
        return sum(self.duplicates_by_run.values())

    @property
    def nan_points(self) -> int:
        return sum(self.nan_by_run.values())


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Integer codes and their dictionary: hashing each string once is far cheaper than comparing them.

    Encoded chunk by chunk, with one dictionary for all chunks: concatenating the strings first
    would copy (and page in) every one of them, the slowest step of a first export."""
    import pyarrow.compute as pc

    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = pa.table({"codes": encoded}).unify_dictionaries().column("codes")  # no-op when shared
        chunks = encoded.chunks
    else:
        chunks = [encoded]
    indices = np.concatenate([numpy_of(chunk.indices).astype(np.int64) for chunk in chunks])
    return indices, chunks[0].dictionary.cast(pa.string())


def _order(run: np.ndarray, key: np.ndarray, step: np.ndarray, timestamp: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Row order by (run, key, step, timestamp, seq); one packed sort key where the ranges allow."""
    if not (len(step) and step.min() >= 0 and step.max() < 2**32 and key.max() < 2**10 and run.max() < 2**21):
        return np.lexsort((seq, timestamp, step, key, run))  # the last sort key is the primary one
    packed = (run << 42) | (key << 32) | step
    if not (seq[1:] > seq[:-1]).all():
        return np.lexsort((seq, timestamp, packed))
    # Rows in write order (a scan by rowid): a stable sort by the packed key alone keeps them in
    # `seq` order within a (run, key, step), so only duplicated groups, rare, need their
    # timestamps compared. Half the time of sorting by all three keys.
    order = np.argsort(packed, kind="stable")
    sorted_keys = packed[order]
    repeats = sorted_keys[1:] == sorted_keys[:-1]
    if repeats.any():
        in_group = np.zeros(len(order), dtype=bool)
        in_group[1:] |= repeats
        in_group[:-1] |= repeats
        positions = np.flatnonzero(in_group)  # whole groups, so re-sorting them keeps their places
        rows = order[positions]
        order[positions] = rows[np.lexsort((seq[rows], timestamp[rows], packed[rows]))]
    return order


def clean_metrics(raw: pa.Table, run_ids: Optional[Iterable[str]] = None) -> Cleaned:
    """Deduplicate (run, key, step) keeping the latest timestamp (ties: the later `seq`); NaN -> NULL.

    With `run_ids`, rows of other runs are dropped and counted as `skipped`.
    """
    if raw.num_rows == 0:
        return Cleaned(CLEAN_SCHEMA.empty_table(), {}, {})
    run, run_names = _codes(raw.column("run_id"))
    key, key_names = _codes(raw.column("key"))
    step = numpy_of(raw.column("step"))
    timestamp = numpy_of(raw.column("timestamp"))
    seq = numpy_of(raw.column("seq"))
    is_nan = numpy_of(raw.column("is_nan")).astype(bool)
    value = numpy_of(raw.column("value"))

    skipped = 0
    if run_ids is not None:
        wanted = np.isin(np.asarray(run_names.to_pylist(), dtype=object), np.asarray(list(run_ids), dtype=object))
        if not wanted.all():
            attached = wanted[run]
            skipped = int((~attached).sum())
            run, key, step, timestamp, seq, is_nan, value = (
                a[attached] for a in (run, key, step, timestamp, seq, is_nan, value)
            )

    order = _order(run, key, step, timestamp, seq)
    run_sorted, key_sorted, step_sorted = run[order], key[order], step[order]
    last_of_group = np.ones(len(order), dtype=bool)
    last_of_group[:-1] = (
        (run_sorted[1:] != run_sorted[:-1]) | (key_sorted[1:] != key_sorted[:-1]) | (step_sorted[1:] != step_sorted[:-1])
    )
    kept = order[last_of_group]
    names = run_names.to_pylist()
    dropped = np.bincount(run_sorted[~last_of_group], minlength=len(names))
    nan_kept = np.bincount(run[kept][is_nan[kept]], minlength=len(names))
    return Cleaned(
        _table(run[kept], run_names, key[kept], key_names, step[kept], value[kept], timestamp[kept], is_nan[kept]),
        {name: int(n) for name, n in zip(names, dropped) if n},
        {name: int(n) for name, n in zip(names, nan_kept) if n},
        skipped,
    )


def _table(run, run_names, key, key_names, step, value, timestamp, is_nan) -> pa.Table:
    """The cleaned columns; run and key stay dictionary-encoded (DuckDB ingests those without copying strings)."""
    return pa.table({
        "run_id": pa.DictionaryArray.from_arrays(array_of(run, pa.int32()), run_names),
        "key": pa.DictionaryArray.from_arrays(array_of(key, pa.int32()), key_names),
        "step": array_of(step, pa.int64()),
        "value": array_of(value, pa.float64(), valid=~is_nan),  # NaN -> NULL; is_nan keeps the fact
        "timestamp": array_of(timestamp, pa.timestamp("ms")),
        "is_nan": array_of(is_nan, pa.bool_()),
    })
