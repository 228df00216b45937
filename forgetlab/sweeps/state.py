"""What each point of a sweep needs, read from the runs already in the tracking store.

Running the same sweep again skips points already FINISHED, resumes points whose process died
(RUNNING with a dead process, or KILLED) from their last checkpoint, and reruns FAILED or
missing ones. Whether a RUNNING point is alive is `forgetlab.tracking.liveness` (the rule
`run --resume` applies too): its process on this machine, else its heartbeat, within `stale_minutes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from forgetlab.sweeps.spec import SweepPoint
from forgetlab.tracking import names
from forgetlab.tracking.liveness import run_liveness

STATES = ("done", "running", "resumable", "rerun", "new")


@dataclass(frozen=True)
class PointState:
    point: SweepPoint
    state: str  # one of STATES
    run_id: Optional[str] = None


def _has_checkpoint(run_id: str) -> bool:
    # Imported here: forgetlab.finetune.checkpoints imports Lightning (seconds), which a sweep with
    # nothing to resume never needs.
    from forgetlab.finetune.checkpoints import latest_checkpoint
    from forgetlab.locations import checkpoint_root

    return latest_checkpoint(checkpoint_root() / run_id) is not None


def _classify_point(point: SweepPoint, candidates: list[Any], stale_minutes: float, now_ms: int) -> PointState:
    finished = next((run for run in candidates if run.info.status == "FINISHED"), None)
    if finished is not None:
        return PointState(point, "done", finished.info.run_id)
    if not candidates:
        return PointState(point, "new")
    latest = candidates[0]
    status = latest.info.status
    if status == "RUNNING":
        if run_liveness(latest, stale_minutes, now_ms).alive:
            return PointState(point, "running", latest.info.run_id)
        status = "KILLED"  # its process is gone
    if status == "KILLED" and _has_checkpoint(latest.info.run_id):
        return PointState(point, "resumable", latest.info.run_id)
    return PointState(point, "rerun", latest.info.run_id)


def classify(points: list[SweepPoint], runs: list[Any], stale_minutes: float, now_ms: int) -> list[PointState]:
    """Decide per point: done, running elsewhere, resumable from a checkpoint, to rerun, or new."""
    by_key: dict[str, list[Any]] = {}
    for run in runs:
        by_key.setdefault(run.data.tags.get(names.POINT, ""), []).append(run)
    states = []
    for point in points:
        candidates = sorted(by_key.get(point.key, []), key=lambda run: run.info.start_time or 0, reverse=True)
        states.append(_classify_point(point, candidates, stale_minutes, now_ms))
    return states


def count_states(states: list[PointState]) -> dict[str, int]:
    return {name: sum(state.state == name for state in states) for name in STATES}


def summary_line(counts: dict[str, int]) -> str:
    """`2 done, 2 new`: the states that occur, in a fixed order."""
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count)
