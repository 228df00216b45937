"""Tracking: the only package that talks to MLflow.

- `store`: the one place an MLflow client is built (`client(uri)`), retried while SQLite is locked;
  the set-up steps many processes take at once (create-or-get an experiment, settle its tags);
  the one-line refusal of a store that cannot be written;
- `tracker`: one run's tracker (owner, heartbeat, resume bookkeeping, batched metrics) and its
  do-nothing twin for ranks other than 0;
- `liveness`: whether a RUNNING run is still being written (its process, else its heartbeat);
- `names`: every tag, metric and artifact name;
- `context`: MLflow's context tags (user, source, git commit) as `mlflow.start_run` resolves them;
- `dataset_inputs`: the data a run reads, as MLflow dataset inputs (digest = fingerprint, role as context);
- `fits`: what links a fit run to the runs, sweep and points it was fitted to;
- `secrets`: scrubbing credentials from anything logged.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name and the submodule that defines it, imported on first use (PEP 562): the
# warehouse's export and queries need only `names`, and `tracker` (with its MLflow plumbing) cost them
# 20 ms of start-up.
_HOMES = {
    "NullTracker": "tracker", "RunTracker": "tracker", "owner_tags": "tracker", "run_tracker": "tracker",
    "STALE_MINUTES": "liveness", "run_liveness": "liveness",
    "SECRET_ENV_VARS": "secrets", "scrub_secrets": "secrets",
    "LOCKED_RETRY_SECONDS": "store", "RetryingClient": "store", "client": "store", "is_locked_error": "store",
    "check_store_writable": "store", "prepare_local_store": "store", "with_retry": "store",
}  # fmt: skip

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'forgetlab.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"forgetlab.tracking.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
