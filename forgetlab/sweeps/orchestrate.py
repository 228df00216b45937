"""A sweep from file to finished runs: plan (what each point needs), then run what is left.

`plan_sweep` reads the sweep file, picks the shard, finds the sweep's runs in the tracking store
and classifies every point; it writes nothing but the store's tables. `run_sweep` stops there
when nothing is left to do (it never imports torch or Lightning then), else builds the embedded
bases once, finds or creates the experiment and the parent run, and runs the points as children
of that parent (`mlflow.parentRunId`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from forgetlab.errors import UserError
from forgetlab.sweeps.launcher import TO_RUN, PointOutcome, run_points
from forgetlab.sweeps.spec import SweepConfig, SweepPoint, load_sweep, select_shard, shard_from_slurm
from forgetlab.sweeps.state import PointState, classify, count_states, summary_line
from forgetlab.tracking import names
from forgetlab.tracking.liveness import STALE_MINUTES

DEFAULT_EXPERIMENT = "forgetlab"


@dataclass(frozen=True)
class SweepRequest:
    """What `forgetlab sweep` was asked to do."""

    config: Path  # the sweep file
    jobs: int = 1  # points run at once
    shard: Optional[str] = None  # "i/n"; None: the SLURM array task's, else every point
    stale_minutes: float = STALE_MINUTES  # a RUNNING point from another machine silent this long is resumed
    tracking_uri: Optional[str] = None  # overrides every point's tracking.uri


@dataclass
class SweepPlan:
    """Every chosen point with what it needs, and where its runs are tracked."""

    sweep: SweepConfig
    shard: Optional[str]
    shard_source: str  # "", "--shard" or "SLURM array task"
    states: list[PointState]
    client: Any
    tracking_uri: str
    experiment_name: str
    experiment_id: Optional[str]  # None until the first run creates the experiment

    @property
    def counts(self) -> dict[str, int]:
        return count_states(self.states)

    @property
    def summary(self) -> str:
        return summary_line(self.counts)

    @property
    def to_run(self) -> int:
        return sum(self.counts[name] for name in TO_RUN)


@dataclass
class SweepResult:
    plan: SweepPlan
    parent_run_id: Optional[str] = None
    outcomes: list[PointOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[PointOutcome]:
        return [outcome for outcome in self.outcomes if outcome.return_code != 0]


def tracking_client(uri: Optional[str]) -> tuple[Any, str]:
    """A retrying MLflow client on a store made ready for several writers, and its resolved URI."""
    from forgetlab import tracking
    from forgetlab.locations import resolve_tracking_uri

    resolved = resolve_tracking_uri(uri)
    return tracking.client(
        resolved, prepare=True
    ), resolved  # prepared before any worker starts: tables made once, WAL on


def _with_tracking_uri(points: list[SweepPoint], uri: Optional[str]) -> list[SweepPoint]:
    if not uri:
        return points
    return [
        SweepPoint(
            p.key,
            p.overrides,
            p.config.model_copy(update={"tracking": p.config.tracking.model_copy(update={"uri": uri})}),
        )
        for p in points
    ]


def _choose_shard(request: SweepRequest) -> tuple[Optional[str], str]:
    if request.shard:
        return request.shard, "--shard"
    from_slurm = shard_from_slurm()
    return (from_slurm, "SLURM array task") if from_slurm else (None, "")


def plan_sweep(request: SweepRequest) -> SweepPlan:
    """Read the sweep, choose the shard and classify its points against the store (runs nothing)."""
    sweep, points = load_sweep(request.config)
    shard, shard_source = _choose_shard(request)
    chosen = select_shard(_with_tracking_uri(points, request.tracking_uri), shard)
    uris = {p.config.tracking.uri for p in chosen}
    experiments = {p.config.tracking.experiment for p in chosen}
    if len(uris) > 1 or len(experiments) > 1:
        raise UserError(
            f"{request.config}: all points of a sweep must log to one tracking store and experiment; do not vary tracking.*"
        )
    client, resolved_uri = tracking_client(next(iter(uris)) if chosen else request.tracking_uri)
    experiment_name = next(iter(experiments)) if chosen else DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(experiment_name)
    runs = []
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`forgetlab.sweep` = '{sweep.name}'", max_results=50000
        )
    states = classify(chosen, runs, request.stale_minutes, int(time.time() * 1000))
    experiment_id = experiment.experiment_id if experiment is not None else None
    return SweepPlan(sweep, shard, shard_source, states, client, resolved_uri, experiment_name, experiment_id)


def find_or_create_parent(client: Any, experiment_id: str, sweep: SweepConfig, source: str) -> str:
    """The parent run of a sweep: found by its tags, so rerunning the sweep reuses it.

    Launches of one sweep that start together (the tasks of an array job) may each create a parent;
    each then looks again and adopts the earliest, deleting its own if it lost, so the sweep keeps
    one parent (start times come from each machine's clock: best effort across machines; a launch
    whose adopted parent is deleted under it looks again, and `close_parent` restores one deleted
    after its children were logged, so no child is left without its parent).
    """
    from forgetlab.tracking import scrub_secrets
    from forgetlab.tracking.context import context_tags
    from forgetlab.tracking.store import CONFLICT_ATTEMPTS

    mine: Optional[str] = None
    for _ in range(CONFLICT_ATTEMPTS):
        found = _sweep_parents(client, experiment_id, sweep)
        if not found:
            mine = client.create_run(
                experiment_id,
                run_name=scrub_secrets(sweep.name),
                # MLflow's own context (user, source, git commit), as every run forgetlab creates has.
                tags={
                    **context_tags(),
                    names.KIND: "sweep",
                    names.SWEEP: sweep.name,
                    names.SWEEP_FILE: scrub_secrets(source),
                },
            ).info.run_id
            continue  # look again: another launch may have created one at the same moment
        winner = found[0].info.run_id
        if mine is not None and mine != winner:
            client.delete_run(mine)  # another launch's parent is earlier
            mine = None
        if not _reopen(client, winner):
            continue  # its launch deleted it just now, having seen an earlier one
        if winner == mine:
            client.log_text(winner, scrub_secrets(sweep.model_dump_json(indent=2)), names.SWEEP_ARTIFACT)
        return winner
    raise RuntimeError(f"sweep {sweep.name}: no parent run settled after {CONFLICT_ATTEMPTS} attempts")


def _reopen(client: Any, run_id: str) -> bool:
    """Mark a parent RUNNING again; False when it was deleted meanwhile."""
    if client.get_run(run_id).info.lifecycle_stage != "active":
        return False
    try:
        client.update_run(run_id, status="RUNNING")
    except Exception as error:
        if "must be in the 'active' state" not in str(error):
            raise
        return False
    return True


def close_parent(client: Any, parent: str, status: str) -> None:
    """Set the parent's final status; a parent deleted under this launch (see `find_or_create_parent`)
    is restored first: this launch's runs are its children."""
    if client.get_run(parent).info.lifecycle_stage != "active":
        client.restore_run(parent)
    client.set_terminated(parent, status=status)


def _sweep_parents(client: Any, experiment_id: str, sweep: SweepConfig) -> list[Any]:
    """The sweep's (active) parent runs, earliest first."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{names.KIND}` = 'sweep' and tags.`{names.SWEEP}` = '{sweep.name}'",
        max_results=100,
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def _prebuild_bases(states: list[PointState]) -> None:
    """Build each embedded base once here rather than racing for it in every worker."""
    from forgetlab.finetune.model import is_embedded

    names = sorted(
        {s.point.config.model.name for s in states if s.state in TO_RUN and is_embedded(s.point.config.model.name)}
    )
    for name in names:
        from forgetlab.embedded.base import ensure_embedded_base

        ensure_embedded_base(name, progress=True)


def _experiment_id(plan: SweepPlan) -> str:
    """The sweep's experiment, created if new, tagged for the UI's training view either way."""
    from forgetlab.mlflow_ui import mark_training_experiment

    if plan.experiment_id is not None:
        return mark_training_experiment(plan.client, plan.experiment_id)
    from forgetlab.tracking import RunTracker

    return RunTracker(plan.tracking_uri, plan.experiment_name).experiment_id


def run_sweep(request: SweepRequest, report: Callable[[str], None]) -> SweepResult:
    """Run every chosen point not FINISHED yet as a child of the sweep's parent run."""
    plan = plan_sweep(request)
    if plan.to_run == 0:
        return SweepResult(plan)
    _prebuild_bases(plan.states)
    experiment_id = _experiment_id(plan)
    parent = find_or_create_parent(plan.client, experiment_id, plan.sweep, str(request.config))
    shard = f", shard {plan.shard} ({plan.shard_source})" if plan.shard else ""
    report(
        f"sweep {plan.sweep.name} (parent run {parent}{shard}): {plan.summary}; running {plan.to_run} with --jobs {request.jobs}"
    )
    started = time.time()
    outcomes = run_points(plan.states, plan.sweep, parent, request.jobs, report)
    result = SweepResult(plan, parent, outcomes, time.time() - started)
    finished_all = not result.failed and plan.counts["running"] == 0
    close_parent(plan.client, parent, "FINISHED" if finished_all else "FAILED")
    return result
