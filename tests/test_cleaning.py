"""The export's cleaning step and its Arrow helpers, against plain-Python references."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from forgetlab.warehouse.arrow_arrays import array_from_python, array_of, numpy_of
from forgetlab.warehouse.cleaning import clean_metrics


def raw_rows(seed: int, rows: int = 3000) -> list[dict]:
    """Metric rows with many re-logged (run, key, step)s, timestamps that sometimes go backwards
    for a later write, and NaNs; `seq` is the write order."""
    rng = np.random.default_rng(seed)
    return [
        {
            "run_id": f"run{rng.integers(0, 7)}", "key": ["ft_loss", "forget_hard", "forget_kl"][rng.integers(0, 3)],
            "step": int(rng.integers(0, 60)), "value": float(rng.normal()), "timestamp": int(1_000 + rng.integers(0, 50)),
            "is_nan": int(rng.random() < 0.05), "seq": seq + 1,
        }
        for seq in range(rows)
    ]  # fmt: skip


def as_table(rows: list[dict], chunks: int) -> pa.Table:
    """The rows in the sources' raw layout, split into `chunks` record batches (as a reader returns them)."""
    types = {"run_id": pa.string(), "key": pa.string(), "step": pa.int64(), "value": pa.float64(),
             "timestamp": pa.int64(), "is_nan": pa.int64(), "seq": pa.int64()}  # fmt: skip
    edges = np.linspace(0, len(rows), chunks + 1).astype(int)
    batches = [
        pa.record_batch([array_from_python([r[name] for r in rows[a:b]], kind) if kind != pa.float64()
                         else array_of(np.array([r[name] for r in rows[a:b]], dtype=float), kind)
                         for name, kind in types.items()], names=list(types))
        for a, b in zip(edges, edges[1:])
    ]  # fmt: skip
    return pa.Table.from_batches(batches)


def reference(rows: list[dict]) -> dict[tuple, tuple]:
    """Per (run, key, step): the row with the latest timestamp, ties broken by the later write."""
    kept: dict[tuple, dict] = {}
    for row in rows:
        group = (row["run_id"], row["key"], row["step"])
        if group not in kept or (row["timestamp"], row["seq"]) > (kept[group]["timestamp"], kept[group]["seq"]):
            kept[group] = row
    return {g: (None if r["is_nan"] else r["value"], r["timestamp"], bool(r["is_nan"])) for g, r in kept.items()}


@pytest.mark.parametrize("write_order", [True, False], ids=["rows-in-write-order", "rows-shuffled"])
@pytest.mark.parametrize("chunks", [1, 5])
def test_cleaning_keeps_the_latest_row_of_every_group_and_counts_the_rest(write_order, chunks):
    rows = raw_rows(seed=chunks)
    if not write_order:  # e.g. a read through an index: the other sort path
        rows = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    cleaned = clean_metrics(as_table(rows, chunks))
    expected = reference(rows)
    table = cleaned.table.set_column(4, "timestamp", cleaned.table.column("timestamp").cast(pa.int64())).to_pylist()
    got = {(r["run_id"], r["key"], r["step"]): (r["value"], r["timestamp"], r["is_nan"]) for r in table}
    assert got == expected
    # Grouped by run then key (in first-seen order), steps ascending within each curve.
    blocks = [(r["run_id"], r["key"]) for r in table]
    starts = [blocks[0]] + [b for a, b in zip(blocks, blocks[1:]) if a != b]
    runs_in_order = [run for i, (run, _) in enumerate(starts) if i == 0 or starts[i - 1][0] != run]
    assert len(starts) == len(set(starts)) and len(runs_in_order) == len(set(runs_in_order))
    assert all(
        a["step"] < b["step"] for a, b in zip(table, table[1:]) if (a["run_id"], a["key"]) == (b["run_id"], b["key"])
    )
    assert cleaned.duplicates == len(rows) - len(expected)
    assert cleaned.nan_points == sum(is_nan for _, _, is_nan in expected.values())
    runs = {run for run, _, _ in expected}
    assert sum(cleaned.duplicates_by_run.values()) == cleaned.duplicates and set(cleaned.duplicates_by_run) <= runs


def in_curve_order(rows: list[dict], chunks: int) -> pa.Table:
    """The rows as a source reading curve by curve hands them over: sorted by (run, key, step) with
    a step's rows in write order, codes in that order, no `seq` (see IN_CURVE_ORDER)."""
    from forgetlab.warehouse.sources.base import raw_schema_in_curve_order

    rows = sorted(rows, key=lambda r: (r["run_id"], r["key"], r["step"], r["seq"]))
    runs, keys = sorted({r["run_id"] for r in rows}), sorted({r["key"] for r in rows})
    schema = raw_schema_in_curve_order()
    edges = np.linspace(0, len(rows), chunks + 1).astype(int)
    return pa.Table.from_batches(
        [
            pa.record_batch(
                [
                    pa.DictionaryArray.from_arrays(
                        array_of(np.array([runs.index(r["run_id"]) for r in part]), pa.int32()),
                        array_from_python(runs, pa.string()),
                    ),
                    pa.DictionaryArray.from_arrays(
                        array_of(np.array([keys.index(r["key"]) for r in part]), pa.int32()),
                        array_from_python(keys, pa.string()),
                    ),
                    array_from_python([r["step"] for r in part], pa.int64()),
                    array_of(np.array([r["value"] for r in part], dtype=float), pa.float64()),
                    array_from_python([r["timestamp"] for r in part], pa.timestamp("ms")),
                    array_of(np.array([bool(r["is_nan"]) for r in part]), pa.bool_()),
                ],
                schema=schema,
            )
            for part in (rows[a:b] for a, b in zip(edges, edges[1:]))
        ],
        schema=schema,
    )


@pytest.mark.parametrize("repeats", [True, False], ids=["steps-relogged", "each-step-once"])
def test_cleaning_rows_read_curve_by_curve(repeats):
    # A re-logged step falls back to the general path (timestamps decide, not the write order);
    # without one, the rows go through as they are, chunk by chunk, and must still come out right.
    rows = raw_rows(seed=4)
    if not repeats:
        rows = list({(r["run_id"], r["key"], r["step"]): r for r in rows}.values())
    cleaned = clean_metrics(in_curve_order(rows, chunks=3), run_ids=[f"run{i}" for i in range(7)])
    table = cleaned.table.set_column(4, "timestamp", cleaned.table.column("timestamp").cast(pa.int64())).to_pylist()
    got = {(r["run_id"], r["key"], r["step"]): (r["value"], r["timestamp"], r["is_nan"]) for r in table}
    expected = reference(rows)
    assert got == expected
    assert [(r["run_id"], r["key"], r["step"]) for r in table] == sorted(expected)
    assert cleaned.duplicates == len(rows) - len(expected) and (cleaned.duplicates > 0) == repeats
    assert cleaned.nan_points == sum(is_nan for _, _, is_nan in expected.values())
    assert cleaned.points_by_run == {run: sum(g[0] == run for g in expected) for run in {g[0] for g in expected}}


def test_cleaning_skips_and_counts_rows_of_runs_not_asked_for():
    rows = raw_rows(seed=3)
    cleaned = clean_metrics(as_table(rows, 2), run_ids=["run1", "run2"])
    assert {r["run_id"] for r in cleaned.table.to_pylist()} == {"run1", "run2"}
    assert cleaned.skipped == sum(r["run_id"] not in ("run1", "run2") for r in rows)


def test_arrow_helpers_round_trip_nulls_offsets_and_types():
    strings = array_from_python(["a", None, "ünï", "", 7, b"blob"], pa.string())
    assert strings.to_pylist() == ["a", None, "ünï", "", "7", "blob"]  # SQLite's loose typing: a number or a BLOB
    with pytest.raises(OverflowError):
        array_from_python([2**40], pa.int32())
    with pytest.raises(TypeError):
        array_from_python(["12"], pa.int64())  # never parsed from text silently
    stamps = array_from_python([0, None, 1_700_000_000_123], pa.timestamp("ms"))
    assert stamps.cast(pa.int64()).to_pylist() == [0, None, 1_700_000_000_123]
    values = np.array([1.5, 2.5, 3.5, 4.5])
    masked = array_of(values, pa.float64(), valid=np.array([True, False, True, True]))
    assert masked.to_pylist() == [1.5, None, 3.5, 4.5]
    flags = array_of(np.array([True, False, True] * 5), pa.bool_())
    assert flags.to_pylist() == [True, False, True] * 5
    assert numpy_of(flags.slice(1, 5)).tolist() == [False, True, True, False, True]  # a slice's bit offset
    sliced = pa.chunked_array([pa.array(np.arange(10)).slice(3, 4), pa.array(np.arange(2))])
    assert numpy_of(sliced).tolist() == [3, 4, 5, 6, 0, 1]
    assert numpy_of(array_of(np.arange(3), pa.timestamp("ms"))).tolist() == [0, 1, 2]
    assert numpy_of(masked).tolist()[0] == 1.5  # nulls: pyarrow's own converter
    assert numpy_of(stamps)[2] == 1_700_000_000_123  # with nulls too, timestamps stay epoch numbers
    with pytest.raises(TypeError, match="not double"):
        array_from_python([1.5], pa.float64())  # never truncated to an integer silently
