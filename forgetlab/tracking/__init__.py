"""Tracking: the only package that talks to MLflow.

- `store`: the one place an MLflow client is built (`client(uri)`), retried while SQLite is locked;
- `run`: one run's tracker (owner, heartbeat, resume bookkeeping, batched metrics) and its
  do-nothing twin for ranks other than 0;
- `names`: every tag and metric name;
- `context`: MLflow's context tags (user, source, git commit) as `mlflow.start_run` resolves them;
- `datasets`: the data a run reads, as MLflow dataset inputs (digest = fingerprint, role as context);
- `fits`: what links a fit run to the runs, sweep and points it was fitted to;
- `secrets`: scrubbing credentials from anything logged.
"""

from forgetlab.tracking.run import NullTracker, RunTracker, owner_alive, owner_tags, run_tracker
from forgetlab.tracking.secrets import SECRET_ENV_VARS, scrub_secrets
from forgetlab.tracking.store import (
    LOCKED_RETRY_SECONDS,
    RetryingClient,
    client,
    is_locked_error,
    prepare_local_store,
    with_retry,
)

__all__ = [
    "LOCKED_RETRY_SECONDS", "NullTracker", "RetryingClient", "RunTracker", "SECRET_ENV_VARS", "client",
    "is_locked_error", "owner_alive", "owner_tags", "prepare_local_store", "run_tracker", "scrub_secrets", "with_retry",
]  # fmt: skip
