"""Sweep files: a grid of run configs expanded into validated points, and shards of them.

A sweep file names a base run config and a grid over any dotted config keys (cartesian
product), optionally with explicit extra points. Every point is validated before anything
runs. A point's identity is its key (the sorted overrides), stored as the tag
`forgetlab.point` (see `forgetlab.sweeps.state` for what a rerun does with it). `--shard i/n`
takes every n-th point, so several machines sharing one tracking server split the sweep
without overlap; under a SLURM job array the shard defaults to the array task's.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

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
    points: list[dict[str, Any]] = Field(
        default_factory=list, description="Explicit extra points (dotted key -> value)."
    )

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
    return ",".join(
        f"{key}={json.dumps(value, sort_keys=True) if not isinstance(value, str) else value}"
        for key, value in sorted(overrides.items())
    )


def _as_override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def _read_sweep_file(path: Path) -> SweepConfig:
    raw = read_yaml(path)
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise UserError(f"{path}: {key}: {what}") from None


def _assignments(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The grid's cartesian product, then the explicit points."""
    assignments: list[dict[str, Any]] = []
    if sweep.grid:
        keys = list(sweep.grid)
        for values in itertools.product(*(sweep.grid[key] for key in keys)):
            assignments.append(dict(zip(keys, values)))
    assignments.extend(dict(point) for point in sweep.points)
    return assignments


def _with_distinct_run_names(points: list[SweepPoint]) -> list[SweepPoint]:
    """Distinct points must have distinct run names to be told apart in the UI."""
    names: dict[str, str] = {}
    for point in points:
        if point.run_name in names and not point.config.tracking.run_name:
            tracking = point.config.tracking.model_copy(update={"run_name": f"{point.run_name}-{len(names)}"})
            object.__setattr__(point, "config", point.config.model_copy(update={"tracking": tracking}))
        names[point.run_name] = point.key
    return points


def load_sweep(path: Path) -> tuple[SweepConfig, list[SweepPoint]]:
    """Read a sweep file and expand it into validated points (all checked before any run)."""
    sweep = _read_sweep_file(path)
    base_path = (path.parent / sweep.base).resolve()
    if not base_path.exists():
        raise UserError(
            f"{path}: base: '{sweep.base}' not found (resolved to {base_path}); give a path relative to the sweep file"
        )
    base_raw = read_yaml(base_path)
    if not sweep.grid and not sweep.points:
        raise UserError(f"{path}: the sweep has no points; add a grid (key: [values]) or a list of points")
    points: list[SweepPoint] = []
    seen: dict[str, int] = {}
    for index, assignment in enumerate(_assignments(sweep)):
        key = point_key(assignment)
        if key in seen:
            raise UserError(f"{path}: point {index + 1} ({key}) duplicates point {seen[key] + 1}; remove one of them")
        seen[key] = index
        merged = apply_overrides(
            yaml.safe_load(yaml.safe_dump(base_raw)),
            [_as_override(k, v) for k, v in {**sweep.overrides, **assignment}.items()],
        )
        points.append(SweepPoint(key, assignment, validate_run_config(merged, f"{path} (point {key})")))
    return sweep, _with_distinct_run_names(points)


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


def shard_from_slurm(environment: Mapping[str, str] = os.environ) -> Optional[str]:
    """The shard `i/n` of this SLURM array task, or None outside a job array.

    `sbatch --array=A-B[:S]` numbers tasks A, A+S, ..., B; SLURM sets SLURM_ARRAY_TASK_ID, _MIN,
    _STEP and _COUNT, so task A is shard 1 whatever A is (arrays often start at 0).
    """
    task_id = environment.get("SLURM_ARRAY_TASK_ID")
    count = environment.get("SLURM_ARRAY_TASK_COUNT")
    if not task_id or not count:
        return None
    try:
        first = int(environment.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(environment.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
        index = (int(task_id) - first) // step + 1
        total = int(count)
    except ValueError:
        raise UserError(
            f"SLURM_ARRAY_TASK_ID={task_id}, SLURM_ARRAY_TASK_COUNT={count}: not numbers; give --shard i/n explicitly"
        ) from None
    return f"{index}/{total}"
