"""`forgetlab sweep`: run (or finish) a grid of runs as children of one parent sweep run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from forgetlab.tracking.liveness import STALE_MINUTES


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_command(
        config: Path = typer.Option(..., "--config", "-c", help="Sweep YAML (see lightning_configs/sweep.yaml)."),
        jobs: int = typer.Option(
            1, "--jobs", "-j", min=1, help="Points to run at once (each gets cores/jobs threads)."
        ),
        shard: Optional[str] = typer.Option(
            None,
            "--shard",
            help="Run only shard i of n, e.g. 1/4. Default: the SLURM array task's (sbatch --array), else all.",
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="List the points and which are done; run nothing."),
        stale_minutes: float = typer.Option(
            STALE_MINUTES, help="A RUNNING point from another machine silent this long is resumed."
        ),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Override the points' tracking.uri."),
    ) -> None:
        """Run every point of a sweep that is not FINISHED yet; rerunning finishes an interrupted sweep.

        Example: forgetlab sweep --config lightning_configs/sweep.yaml --jobs 2
        """
        from rich.console import Console

        from forgetlab.sweeps import SweepRequest, plan_sweep, run_sweep

        console = Console()
        request = SweepRequest(config, jobs, shard, stale_minutes, tracking_uri)
        if dry_run:
            _print_plan(console, plan_sweep(request))
            return
        result = run_sweep(request, console.print)
        name = result.plan.sweep.name
        if result.parent_run_id is None:
            console.print(f"sweep {name}: nothing to run ({result.plan.summary})")
            return
        failed = result.failed
        console.print(
            f"sweep {name}: {len(result.outcomes) - len(failed)} finished, {len(failed)} failed in {result.seconds:.0f} s"
            + ("; run the same command again to retry the failed points" if failed else "")
        )
        if failed:
            raise typer.Exit(1)


def _print_plan(console, plan) -> None:
    from rich.table import Table

    shard = (
        f" (shard {plan.shard}" + (", from the SLURM array task)" if plan.shard_source.startswith("SLURM") else ")")
        if plan.shard
        else ""
    )
    table = Table(title=f"sweep {plan.sweep.name}: {len(plan.states)} points{shard}")
    for column in ("run", "point", "state", "run id"):
        table.add_column(column)
    for state in plan.states:
        table.add_row(state.point.run_name, state.point.key, state.state, state.run_id or "")
    console.print(table)
    console.print(plan.summary)
