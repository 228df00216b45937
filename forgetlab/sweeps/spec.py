"""Sweeps: a grid of run configs, each point a child MLflow run of one parent sweep run.

A sweep file names a base run config and a grid over any dotted config keys (cartesian
product), optionally with explicit extra points. Every point is validated before anything
runs. A point's identity is its key (the sorted overrides), stored as the tag
`forgetlab.point`, so running the same sweep again skips points already FINISHED, resumes
points whose process died (RUNNING with a dead process, or KILLED) from their last checkpoint,
and reruns FAILED or missing ones. `--shard i/n` takes every n-th point, so several machines
sharing one tracking server split the sweep without overlap.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from forgetlab.config import RunConfig, apply_overrides, read_yaml, validate_run_config
from forgetlab.errors import UserError


class SweepConfig(BaseModel):
    """A sweep file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Sweep name: the parent run's name and the tag forgetlab.sweep.")
    base: str = Field(..., description="Run config every point starts from, relative to the sweep file.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted keys set on every point.")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Dotted key -> values; the cartesian product.")
    points: list[dict[str, Any]] = Field(default_factory=list, description="Explicit extra points (dotted key -> value).")

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"'{key}' has no values; give at least one or remove it")
        return grid


@dataclass(frozen=True)
class SweepPoint:
    key: str  # "lora.rank=4,seed=0": identity of the point inside its sweep
    overrides: dict[str, Any]
    config: RunConfig

    @property
    def run_name(self) -> str:
        return self.config.run_name()


def point_key(overrides: dict[str, Any]) -> str:
    return ",".join(f"{key}={json.dumps(value, sort_keys=True) if not isinstance(value, str) else value}" for key, value in sorted(overrides.items()))


def _as_override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def load_sweep(path: Path) -> tuple[SweepConfig, list[SweepPoint]]:
    """Read a sweep file and expand it into validated points (all checked before any run)."""
    raw = read_yaml(path)
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise UserError(f"{path}: {key}: {what}") from None
    base_path = (path.parent / sweep.base).resolve()
    if not base_path.exists():
        raise UserError(f"{path}: base: '{sweep.base}' not found (resolved to {base_path}); give a path relative to the sweep file")
    base_raw = read_yaml(base_path)
    if not sweep.grid and not sweep.points:
        raise UserError(f"{path}: the sweep has no points; add a grid (key: [values]) or a list of points")

    assignments: list[dict[str, Any]] = []
    if sweep.grid:
        keys = list(sweep.grid)
        for values in itertools.product(*(sweep.grid[key] for key in keys)):
            assignments.append(dict(zip(keys, values)))
    assignments.extend(dict(point) for point in sweep.points)

    points: list[SweepPoint] = []
    seen: dict[str, int] = {}
    for index, assignment in enumerate(assignments):
        key = point_key(assignment)
        if key in seen:
            raise UserError(f"{path}: point {index + 1} ({key}) duplicates point {seen[key] + 1}; remove one of them")
        seen[key] = index
        merged = apply_overrides(
            yaml.safe_load(yaml.safe_dump(base_raw)),
            [_as_override(k, v) for k, v in {**sweep.overrides, **assignment}.items()],
        )
        config = validate_run_config(merged, f"{path} (point {key})")
        points.append(SweepPoint(key, assignment, config))
    names: dict[str, str] = {}
    for point in points:
        if point.run_name in names and not point.config.tracking.run_name:
            # Distinct points must have distinct run names to be told apart in the UI.
            object.__setattr__(point, "config", point.config.model_copy(update={"tracking": point.config.tracking.model_copy(update={"run_name": f"{point.run_name}-{len(names)}"})}))
        names[point.run_name] = point.key
    return sweep, points


def select_shard(points: list[SweepPoint], shard: Optional[str]) -> list[SweepPoint]:
    """`i/n` (1-based): points i-1, i-1+n, ... of the points sorted by key."""
    if not shard:
        return points
    try:
        index_text, count_text = shard.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UserError(f"--shard '{shard}': expected i/n with 1 <= i <= n, e.g. --shard 1/4") from None
    if not 1 <= index <= count:
        raise UserError(f"--shard '{shard}': expected i/n with 1 <= i <= n, e.g. --shard 1/4")
    ordered = sorted(points, key=lambda point: point.key)
    return ordered[index - 1 :: count]


# ---------------------------------------------------------------------------- state in the tracking store


@dataclass(frozen=True)
class PointState:
    point: SweepPoint
    state: str  # done | running | resumable | rerun | new
    run_id: Optional[str] = None


def process_alive(host: str, pid: str) -> Optional[bool]:
    """Whether the process that owns a RUNNING run is alive; None when it ran on another machine."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def classify(points: list[SweepPoint], runs: list[Any], stale_minutes: float, now_ms: int) -> list[PointState]:
    """Decide per point: done, running elsewhere, resumable from a checkpoint, to rerun, or new."""
    from forgetlab.checkpoints import latest_checkpoint
    from forgetlab.paths import checkpoint_root

    by_key: dict[str, list[Any]] = {}
    for run in runs:
        by_key.setdefault(run.data.tags.get("forgetlab.point", ""), []).append(run)
    states = []
    for point in points:
        candidates = sorted(by_key.get(point.key, []), key=lambda run: run.info.start_time or 0, reverse=True)
        if any(run.info.status == "FINISHED" for run in candidates):
            finished = next(run for run in candidates if run.info.status == "FINISHED")
            states.append(PointState(point, "done", finished.info.run_id))
            continue
        latest = candidates[0] if candidates else None
        if latest is None:
            states.append(PointState(point, "new"))
            continue
        status = latest.info.status
        if status == "RUNNING":
            alive = process_alive(latest.data.tags.get("forgetlab.host", ""), latest.data.tags.get("forgetlab.pid", ""))
            heartbeat = latest.data.tags.get("forgetlab.heartbeat_ms")
            quiet_for = (now_ms - int(heartbeat)) / 60000 if heartbeat and heartbeat.isdigit() else None
            if alive or (alive is None and (quiet_for is None or quiet_for < stale_minutes)):
                states.append(PointState(point, "running", latest.info.run_id))
                continue
            status = "KILLED"  # its process is gone
        if status == "KILLED" and latest_checkpoint(checkpoint_root() / latest.info.run_id) is not None:
            states.append(PointState(point, "resumable", latest.info.run_id))
        else:
            states.append(PointState(point, "rerun", latest.info.run_id))
    return states
