"""`forgetlab sweep`: run (or finish) a grid of runs as children of one parent sweep run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_command(
        config: Path = typer.Option(..., "--config", "-c", help="Sweep YAML (see lightning_configs/sweep.yaml)."),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Points to run at once (each gets cores/jobs threads)."),
        shard: Optional[str] = typer.Option(None, "--shard", help="Run only shard i of n, e.g. 1/4 (for array jobs)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List the points and which are done; run nothing."),
        stale_minutes: float = typer.Option(30.0, help="A RUNNING point from another machine silent this long is resumed."),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Override the points' tracking.uri."),
    ) -> None:
        """Run every point of a sweep that is not FINISHED yet; rerunning finishes an interrupted sweep.

        Example: forgetlab sweep --config lightning_configs/sweep.yaml --jobs 2
        """
        import time

        from rich.console import Console
        from rich.table import Table

        from forgetlab.errors import UserError
        from forgetlab.sweep import classify, load_sweep, select_shard
        from forgetlab.sweep_runner import find_or_create_parent, run_points, tracking_client

        console = Console()
        sweep, points = load_sweep(config)
        if tracking_uri:
            points = [
                type(p)(p.key, p.overrides, p.config.model_copy(update={"tracking": p.config.tracking.model_copy(update={"uri": tracking_uri})}))
                for p in points
            ]
        chosen = select_shard(points, shard)
        uris = {p.config.tracking.uri for p in chosen}
        experiments = {p.config.tracking.experiment for p in chosen}
        if len(uris) > 1 or len(experiments) > 1:
            raise UserError(f"{config}: all points of a sweep must log to one tracking store and experiment; do not vary tracking.*")
        client, resolved_uri = tracking_client(next(iter(uris)) if chosen else tracking_uri)
        experiment_name = next(iter(experiments)) if chosen else "forgetlab"
        experiment = client.get_experiment_by_name(experiment_name)
        runs = []
        if experiment is not None:
            runs = client.search_runs(
                [experiment.experiment_id], filter_string=f"tags.`forgetlab.sweep` = '{sweep.name}'", max_results=50000
            )
        states = classify(chosen, runs, stale_minutes, int(time.time() * 1000))
        counts = {name: sum(s.state == name for s in states) for name in ("done", "running", "resumable", "rerun", "new")}
        summary = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
        if dry_run:
            table = Table(title=f"sweep {sweep.name}: {len(states)} points" + (f" (shard {shard})" if shard else ""))
            for column in ("run", "point", "state", "run id"):
                table.add_column(column)
            for state in states:
                table.add_row(state.point.run_name, state.point.key, state.state, state.run_id or "")
            console.print(table)
            console.print(summary)
            return
        todo = counts["new"] + counts["rerun"] + counts["resumable"]
        if todo == 0:
            console.print(f"sweep {sweep.name}: nothing to run ({summary})")
            return
        # Build the embedded base once here rather than racing for it in every worker.
        from forgetlab.model import is_embedded

        for name in sorted({s.point.config.model.name for s in states if is_embedded(s.point.config.model.name)}):
            from forgetlab.embedded.base import ensure_embedded_base

            ensure_embedded_base(name, progress=True)
        if experiment is None:
            from forgetlab.tracking import RunTracker

            experiment_id = RunTracker(resolved_uri, experiment_name).experiment_id
        else:
            experiment_id = experiment.experiment_id
        parent = find_or_create_parent(client, experiment_id, sweep, str(config))
        console.print(f"sweep {sweep.name} (parent run {parent}): {summary}; running {todo} with --jobs {jobs}")
        started = time.time()
        outcomes = run_points(states, sweep, parent, jobs, console.print)
        failed = [o for o in outcomes if o.return_code != 0]
        finished_all = not failed and counts["running"] == 0
        client.set_terminated(parent, status="FINISHED" if finished_all else "FAILED")
        console.print(
            f"sweep {sweep.name}: {len(outcomes) - len(failed)} finished, {len(failed)} failed in {time.time() - started:.0f} s"
            + ("; run the same command again to retry the failed points" if failed else "")
        )
        if failed:
            raise typer.Exit(1)
