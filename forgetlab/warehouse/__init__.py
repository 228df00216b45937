"""The DuckDB warehouse: MLflow's runs and metric histories as SQL tables and views.

MLflow answers curve questions badly (search filters on a metric's last value only; histories
come one run and key per call). `export_warehouse` copies a tracking store into DuckDB,
incrementally and atomically; `run_query` answers SQL over it, read-only. The law fits read the
`points` view through `run_query`. Tables and views are documented in docs/warehouse.md.

Names resolve lazily (PEP 562) so that `forgetlab query` imports only what a query needs; none
of this imports MLflow (except a server export) or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExportReport": "forgetlab.warehouse.export",
    "export_warehouse": "forgetlab.warehouse.export",
    "stale_reason": "forgetlab.warehouse.freshness",
    "QueryFile": "forgetlab.warehouse.query",
    "load_query": "forgetlab.warehouse.query",
    "parse_query": "forgetlab.warehouse.query",
    "run_query": "forgetlab.warehouse.query",
    "POINTS_COLUMNS": "forgetlab.warehouse.schema",
    "RUN_COLUMNS": "forgetlab.warehouse.schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'forgetlab.warehouse' has no attribute {name!r}")
