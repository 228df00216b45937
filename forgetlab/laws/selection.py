"""Choosing the points of a fit: a fresh warehouse, the query, and runs that may share a law.

Three things a newcomer met, each handled here rather than in the fitting:

- a stale warehouse: like `forgetlab query`, a fit exports first when the SQLite tracking store
  changed after the last export (the warehouse's `stale_reason` and `export_warehouse`);
- runs that cannot share a law: different base models (`model`, `base_fingerprint`), context
  lengths, learning rates or step budgets (`steps`, which shapes the schedule) give different
  curves; pooling them gave R² 0.15 and c = −0.45 without a word. A fit refuses such points in
  one line naming the groups and the fix (`--param model=...`, or `--by model` to fit apart);
- the `min_step` cut: runs whose every point falls at or below it vanish from the fit; the
  fit says so, instead of later blaming a shortage of ranks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from forgetlab.errors import UserError

# Columns of the points whose values must agree for runs to share one law.
COMPARABILITY = ("model", "base_fingerprint", "context_length", "lr", "steps")
CUT_PARAM = "min_step"


def reads_warehouse(sql: str) -> bool:
    return re.search(r"\b(points|runs|curves|final)\b", sql, re.IGNORECASE) is not None


def refresh_warehouse(sql: str, tracking_uri: Optional[str], db_path: Path, console) -> None:
    """Export first when the query reads the warehouse and the SQLite store is newer (as `query` does)."""
    if not reads_warehouse(sql):
        return
    from forgetlab.locations import default_tracking_uri
    from forgetlab.warehouse.export import export_warehouse
    from forgetlab.warehouse.freshness import stale_reason

    uri = tracking_uri or default_tracking_uri()
    if stale_reason(uri, db_path) is None:
        return
    console.print(export_warehouse(uri, db_path).summary())


def label(value: Any) -> str:
    """A value as the refusal and the report's set labels print it (NULL for missing)."""
    if value is None or value != value:
        return "NULL"
    return f"{value:g}" if isinstance(value, float) else str(value)


def mixed_column(rows, columns: tuple[str, ...] = COMPARABILITY, skip: Optional[str] = None) -> Optional[tuple[str, list[str]]]:
    """The first of `columns` whose values differ within `rows`, with those values as labels; None when all agree.

    The one rule for "these runs may be pooled": `fit` applies it to a law's points, `plot` to the
    runs it would average into one line.
    """
    for column in columns:
        if column == skip or column not in rows.columns:
            continue
        values = sorted({label(v) for v in rows[column].tolist()})
        if len(values) >= 2:
            return column, values
    return None


def value_to_keep(values: list[str]) -> str:
    """The value a refusal suggests keeping: the first that is not NULL."""
    return next((v for v in values if v != "NULL"), values[0])


def check_comparable(rows, where: str, by: Optional[str]) -> None:
    """UserError naming the first comparability column whose values differ within `rows`."""
    mixed = mixed_column(rows, skip=by)
    if mixed is None:
        return
    column, values = mixed
    raise UserError(
        f"{where}: the points mix runs that cannot share one law: {column} = {', '.join(values)}; "
        f"fit one with --param {column}={value_to_keep(values)}, or fit them apart with --by {column}"
    )


def shared_keys(rows) -> dict[str, Any]:
    """The comparability columns' values shared by all `rows` (after `check_comparable`)."""
    found = {}
    for column in COMPARABILITY:
        if column in rows.columns and len(rows):
            value = rows[column].iloc[0]
            found[column] = None if value is None or value != value else (value.item() if hasattr(value, "item") else value)
    return found


def cut_note(sql: str, overrides: dict[str, Any], frame, db_path: Path) -> Optional[str]:
    """Which runs the `min_step` cut leaves out entirely (every point at or below it), or None."""
    from forgetlab.laws.points import load_points, query_parameters

    values = query_parameters(sql, overrides)
    if CUT_PARAM not in values or not isinstance(values[CUT_PARAM], (int, float)) or values[CUT_PARAM] < 0:
        return None
    everything = load_points(sql, {**overrides, CUT_PARAM: -1}, db_path)
    if "run_id" not in everything.columns or "N" not in everything.columns:
        return None
    kept = set(frame["run_id"].astype(str)) if "run_id" in frame.columns else set()
    lost = everything[~everything["run_id"].astype(str).isin(kept)]
    if lost.empty:
        return None
    cut = values[CUT_PARAM]
    runs = lost["run_id"].nunique()
    largest = float(lost.groupby("run_id")["N"].max().max())
    return (
        f"the cut {CUT_PARAM}={cut:g} (keep N > {cut:g}) leaves out every point of {runs} run{'s' if runs != 1 else ''} "
        f"whose steps end at N={largest:g} or before; fit them with a lower cut, e.g. --param {CUT_PARAM}=0"
    )
