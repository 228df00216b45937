"""Whether a RUNNING run is still being written: the one rule `run --resume` and the sweep both apply.

A run records its writer (host and pid tags, `owner_tags`) and, with every flush, when it last
wrote (the heartbeat tag). A run left RUNNING is

- on this machine: alive while its process is (a killed process cannot mark its own run);
- on another machine, whose processes cannot be asked: alive until it has been silent for
  `stale_minutes` (default `STALE_MINUTES`), silent since its last heartbeat, or since it
  started if it never flushed.

Anything not RUNNING is not alive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from forgetlab.tracking import names

STALE_MINUTES = 30.0  # a RUNNING run from another machine silent this long is taken as dead


@dataclass(frozen=True)
class Liveness:
    alive: bool
    why: str  # for a message: "its process 123 on this machine is running", ...


def run_liveness(run: Any, stale_minutes: float = STALE_MINUTES, now_ms: Optional[int] = None) -> Liveness:
    """Whether MLflow run `run` (an `mlflow.entities.Run`) is still being written, and why."""
    from forgetlab.utils.processes import process_alive  # imported here: the CLI imports this module for STALE_MINUTES

    if run.info.status != "RUNNING":
        return Liveness(False, f"it is {run.info.status}")
    tags = run.data.tags
    host, pid = tags.get(names.HOST, ""), tags.get(names.PID, "")
    local = process_alive(host, pid)
    if local is not None:
        return Liveness(local, f"its process {pid} on this machine is {'running' if local else 'gone'}")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    heartbeat = tags.get(names.HEARTBEAT_MS, "")
    last = int(heartbeat) if heartbeat.isdigit() else (run.info.start_time or 0)
    quiet = max(0.0, (now_ms - last) / 60000)
    alive = quiet < stale_minutes
    where = f"host {host}" if host else "another machine"
    return Liveness(
        alive,
        f"it runs on {where} (pid {pid or '?'}) and last wrote {quiet:.0f} min ago "
        f"({'under' if alive else 'over'} the {stale_minutes:g} min after which it counts as dead)",
    )
