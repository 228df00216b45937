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
from forgetlab.warehouse.sources.base import IN_CURVE_ORDER

CLEAN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("key", pa.string()),
        ("step", pa.int64()),
        ("value", pa.float64()),
        ("timestamp", pa.timestamp("ms")),
        ("is_nan", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Cleaned:
    table: pa.Table  # run_id, key, step, value (NULL for NaN), timestamp (ms), is_nan; sorted by run, key, step
    duplicates_by_run: dict[str, int]
    nan_by_run: dict[str, int]
    points_by_run: dict[str, int]  # rows written per run
    skipped: int = (
        0  # rows of runs not asked for (a guard: every source leaves rows of no run out, the catalog counts them)
    )

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
    if pa.types.is_dictionary(column.type):
        encoded = column
    else:
        import pyarrow.compute as pc  # its import alone is 0.1 s: only when there are strings to encode

        encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        if encoded.num_chunks > 1:
            encoded = pa.table({"codes": encoded}).unify_dictionaries().column("codes")  # no-op when shared
        chunks = encoded.chunks
    else:
        chunks = [encoded]
    indices = [numpy_of(chunk.indices) for chunk in chunks]
    codes = indices[0] if len(indices) == 1 else np.concatenate(indices)  # a view of Arrow's buffer if one chunk
    return codes, chunks[0].dictionary.cast(pa.string())


def _order(
    run: np.ndarray, key: np.ndarray, step: np.ndarray, timestamp: np.ndarray, seq: np.ndarray
) -> Optional[np.ndarray]:
    """Row order by (run, key, step, timestamp, seq); one packed sort key where the ranges allow.
    None when the rows are in that order already."""
    if not (len(step) and step.min() >= 0 and step.max() < 2**32 and key.max() < 2**10 and run.max() < 2**21):
        return np.lexsort((seq, timestamp, step, key, run))  # the last sort key is the primary one
    packed = (run.astype(np.int64) << 42) | (key.astype(np.int64) << 32) | step
    if not (seq[1:] > seq[:-1]).all():
        return np.lexsort((seq, timestamp, packed))
    # Rows in write order (a scan by rowid), or in curve order already (a read through the
    # (run, key, step) index): a stable sort by the packed key alone, or none, keeps them in `seq`
    # order within a (run, key, step), so only duplicated groups, rare, need their timestamps
    # compared. Half the time of sorting by all three keys.
    order = None if (packed[1:] >= packed[:-1]).all() else np.argsort(packed, kind="stable")
    sorted_keys = packed if order is None else packed[order]
    repeats = sorted_keys[1:] == sorted_keys[:-1]
    if repeats.any():
        order = np.arange(len(packed)) if order is None else order
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
        return Cleaned(CLEAN_SCHEMA.empty_table(), {}, {}, {})
    in_curve_order = bool((raw.schema.metadata or {}).get(IN_CURVE_ORDER))
    if in_curve_order:
        cleaned = _clean_in_curve_order(raw, run_ids)
        if cleaned is not None:
            return cleaned
    run, run_names = _codes(raw.column("run_id"))
    key, key_names = _codes(raw.column("key"))
    step = numpy_of(raw.column("step"))
    timestamp = numpy_of(raw.column("timestamp"))
    seq = np.arange(raw.num_rows) if in_curve_order else numpy_of(raw.column("seq"))
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
    in_order = (lambda column: column) if order is None else (lambda column: column[order])
    run_sorted, key_sorted, step_sorted = in_order(run), in_order(key), in_order(step)
    last_of_group = np.ones(len(step), dtype=bool)
    last_of_group[:-1] = (
        (run_sorted[1:] != run_sorted[:-1])
        | (key_sorted[1:] != key_sorted[:-1])
        | (step_sorted[1:] != step_sorted[:-1])
    )
    kept = order[last_of_group] if order is not None else np.flatnonzero(last_of_group)
    names = run_names.to_pylist()
    dropped = np.bincount(run_sorted[~last_of_group], minlength=len(names))
    nan_kept = np.bincount(run[kept][is_nan[kept]], minlength=len(names))
    return Cleaned(
        _table(run[kept], run_names, key[kept], key_names, step[kept], value[kept], timestamp[kept], is_nan[kept]),
        _by_name(names, dropped),
        _by_name(names, nan_kept),
        _by_name(names, np.bincount(run[kept], minlength=len(names))),
        skipped,
    )


def _clean_in_curve_order(raw: pa.Table, run_ids: Optional[Iterable[str]]) -> Optional[Cleaned]:
    """Rows already in curve order with no (run, key, step) twice: NaN to NULL, chunk by chunk,
    with no column copied. None (use the general path) if a step repeats or a run is not asked for."""
    run_names = raw.column("run_id").chunk(0).dictionary.to_pylist() if raw.column("run_id").num_chunks else []
    if run_ids is not None and not set(run_names) <= set(run_ids):
        return None
    batches, nan_kept, points = [], np.zeros(len(run_names), np.int64), np.zeros(len(run_names), np.int64)
    previous: Optional[tuple[int, int, int]] = None
    for batch in raw.to_batches():
        if batch.num_rows == 0:
            continue
        run, key = (numpy_of(batch.column(name).indices) for name in ("run_id", "key"))
        step = numpy_of(batch.column("step"))
        first = (int(run[0]), int(key[0]), int(step[0]))
        if first == previous or ((run[1:] == run[:-1]) & (key[1:] == key[:-1]) & (step[1:] == step[:-1])).any():
            return None
        previous = (int(run[-1]), int(key[-1]), int(step[-1]))
        is_nan = numpy_of(batch.column("is_nan"))
        nan_kept += np.bincount(run[is_nan], minlength=len(run_names))
        points += np.bincount(run, minlength=len(run_names))
        batches.append(
            pa.record_batch(
                [
                    batch.column("run_id"),
                    batch.column("key"),
                    batch.column("step"),
                    array_of(
                        numpy_of(batch.column("value")), pa.float64(), valid=~is_nan
                    ),  # NaN -> NULL; is_nan keeps the fact
                    batch.column("timestamp"),
                    batch.column("is_nan"),
                ],
                names=CLEAN_SCHEMA.names,
            )
        )
    return Cleaned(pa.Table.from_batches(batches), {}, _by_name(run_names, nan_kept), _by_name(run_names, points))


def _by_name(names: list[str], counts: np.ndarray) -> dict[str, int]:
    return {name: int(n) for name, n in zip(names, counts) if n}


def _table(run, run_names, key, key_names, step, value, timestamp, is_nan) -> pa.Table:
    """The cleaned columns; run and key stay dictionary-encoded (DuckDB ingests those without copying strings)."""
    return pa.table(
        {
            "run_id": pa.DictionaryArray.from_arrays(array_of(run, pa.int32()), run_names),
            "key": pa.DictionaryArray.from_arrays(array_of(key, pa.int32()), key_names),
            "step": array_of(step, pa.int64()),
            "value": array_of(value, pa.float64(), valid=~is_nan),  # NaN -> NULL; is_nan keeps the fact
            "timestamp": array_of(timestamp, pa.timestamp("ms")),
            "is_nan": array_of(is_nan, pa.bool_()),
        }
    )
