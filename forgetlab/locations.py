"""Where forgetlab keeps things by default, in one place.

- The tracking store: `$MLFLOW_TRACKING_URI`, else `sqlite:///<cwd>/mlruns/mlflow.db`
  (MLflow 3 refuses the old `./mlruns` file store), with artifacts under `mlruns/artifacts/`.
- The DuckDB warehouse: `mlruns/forgetlab.duckdb`.
- The cache (embedded base, embedded data sets, packed token blocks): `$FORGETLAB_CACHE`,
  else `~/.cache/forgetlab`.
- Checkpoints for resuming runs: `mlruns/checkpoints/<run_id>/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

STORE_FOLDER = "mlruns"


def store_folder() -> Path:
    return Path.cwd() / STORE_FOLDER


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_folder() / 'mlflow.db'}"


def resolve_tracking_uri(configured: Optional[str]) -> str:
    """Config key first, then the environment, then the local SQLite store."""
    return configured or default_tracking_uri()


def default_artifact_root() -> Path:
    return store_folder() / "artifacts"


def default_warehouse_path() -> Path:
    return store_folder() / "forgetlab.duckdb"


def checkpoint_root() -> Path:
    return store_folder() / "checkpoints"


CACHE_ENV = "FORGETLAB_CACHE"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "forgetlab"


def sqlite_path(tracking_uri: str) -> Optional[Path]:
    """The database file of a `sqlite:///...` URI, or None for servers and other stores."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None
