"""Choosing the points of a fit: a fresh warehouse, and what the query's early-step cut left out.

Two things a newcomer met, each handled here rather than in the fitting (runs that cannot share a
law, the third, are `comparability.py`'s):

- a stale warehouse: like `forgetlab query`, a fit exports first when the SQLite tracking store
  changed after the last export (the warehouse's `stale_reason` and `export_warehouse`);
- the `min_step` cut: runs whose every point falls at or below it vanish from the fit; the
  fit says so, instead of later blaming a shortage of ranks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

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
