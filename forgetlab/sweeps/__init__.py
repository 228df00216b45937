"""Sweeps: a grid of run configs, each point a child MLflow run of one parent sweep run.

- `spec`: the sweep file, its points and shards (`--shard`, SLURM arrays);
- `state`: what each point needs, from the runs already in the store (done, resume, rerun, new);
- `launcher`: K worker processes on one machine, each with its share of the CPU;
- `worker`: the entry point of one point's process;
- `orchestrate`: plan and run a sweep (experiment, base pre-build, parent run): what the CLI calls.
"""

from forgetlab.sweeps.orchestrate import (
    SweepPlan,
    SweepRequest,
    SweepResult,
    find_or_create_parent,
    plan_sweep,
    run_sweep,
)
from forgetlab.sweeps.spec import SweepConfig, SweepPoint, load_sweep, point_key, select_shard, shard_from_slurm
from forgetlab.sweeps.state import PointState, classify

__all__ = [
    "PointState",
    "SweepConfig",
    "SweepPlan",
    "SweepPoint",
    "SweepRequest",
    "SweepResult",
    "classify",
    "find_or_create_parent",
    "load_sweep",
    "plan_sweep",
    "point_key",
    "run_sweep",
    "select_shard",
    "shard_from_slurm",
]
