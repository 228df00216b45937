"""`forgetlab run`: one fine-tuning run from a config file, or the resumption of one."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from forgetlab.errors import UserError
from forgetlab.tracking import names

FINAL_METRICS = (names.FT_LOSS, names.FORGET_HARD, names.FORGET_SOFT, names.FORGET_KL, names.FORGET_AGREE)


def _config_of_run(run_id: str, tracking_uri: Optional[str]):
    """The resolved config a run was started with (its `config.yaml` artifact)."""
    from mlflow.exceptions import MlflowException

    from forgetlab import tracking
    from forgetlab.config import read_yaml, validate_run_config
    from forgetlab.locations import resolve_tracking_uri, sqlite_path
    from forgetlab.tracking.secrets import scrub_secrets

    uri = resolve_tracking_uri(tracking_uri)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():  # MLflow would create an empty store here
        raise UserError(
            f"--resume: no tracking store at {database}; run from the folder holding mlruns/, or pass --tracking-uri"
        )
    # A resume writes the run (and its checkpoints beside the store): a read-only store is one line here.
    tracking.check_store_writable(uri, "copy the folder holding mlruns/ to a writable place and resume from there")
    client = tracking.client(uri)
    missing = (
        f"--resume: no run '{run_id}' with a {names.CONFIG_ARTIFACT} in the tracking store {scrub_secrets(uri)}; "
        "list the runs that did not finish, with their ids, with `forgetlab query queries/unfinished.sql`"
    )
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(missing) from None
    kind = run.data.tags.get(names.KIND, "run")
    if kind != "run":
        raise UserError(f"--resume: '{run_id}' is a {kind} run, not a fine-tuning run")
    if run.info.status == "FINISHED":
        raise UserError(f"--resume: run '{run_id}' is FINISHED already; nothing to resume (start a new run instead)")
    liveness = tracking.run_liveness(run)  # the sweep's rule too: its process here, else its heartbeat
    if liveness.alive:
        raise UserError(f"--resume: run '{run_id}' is still running: {liveness.why}; wait for it or stop it first")
    try:
        local = client.download_artifacts(run_id, names.CONFIG_ARTIFACT)
    except MlflowException:
        raise UserError(missing) from None
    config = validate_run_config(read_yaml(Path(local)), f"config of run {run_id}")
    if tracking_uri:  # resume into the store the run was found in
        config = config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": tracking_uri})})
    return config


def print_summary(result, console) -> None:
    """The run's id, its losses at step 0 and at the end, and where it was logged.

    The lines a user copies (the run id, the store, the adapter's URI) are printed whole: rich
    would otherwise wrap them at the terminal's width, and a wrapped path pastes as two pieces.
    """
    from rich.markup import escape
    from rich.table import Table

    def unwrapped(text: str) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False)

    console.print(
        f"run [bold]{escape(result.run_name)}[/bold] {result.run_id}: {result.status} after {result.steps_done} steps, P={result.P:,}",
        soft_wrap=True, highlight=False,
    )  # fmt: skip
    table = Table()
    table.add_column("metric")
    table.add_column("step 0", justify="right")
    table.add_column(f"step {result.steps_done}", justify="right")
    optional = (
        *names.PENALTY_METRICS,
        *names.MULTIPLE_CHOICE_METRICS,
        *names.REFUSAL_METRICS,
    )  # in the run only when on
    for key in (*FINAL_METRICS, *optional):
        if key in result.last:
            start = result.first.get(key)
            table.add_row(key, f"{start:.4f}" if start is not None else "-", f"{result.last[key]:.4f}")
    console.print(table)
    unwrapped(f"tracking store: {result.tracking_uri}")
    if result.adapter_uri:
        unwrapped(f"adapter: {result.adapter_uri}")
    if result.merged_uri:
        unwrapped(f"merged model: {result.merged_uri}")
    command = command_name()
    console.print(
        f"see the curves: [bold]{command} ui[/bold]   query them: [bold]{command} query queries/curves.sql[/bold]",
        soft_wrap=True,
    )


def resume_command(run_id: str, tracking_uri: str) -> str:
    """The command that resumes `run_id`, typed in this folder (which holds its checkpoints, mlruns/checkpoints/).

    `--tracking-uri` only when the run is not in the store a plain `forgetlab run` here would use.
    """
    from forgetlab.locations import resolve_tracking_uri

    store = "" if tracking_uri == resolve_tracking_uri(None) else f" --tracking-uri {shlex.quote(tracking_uri)}"
    return f"{command_name()} run --resume {run_id}{store}"


def command_name() -> str:
    """How the user can call forgetlab from here: `forgetlab` when it is on PATH, else the script's path.

    After `make run` the command lives in .venv/bin, which is not on PATH until the venv is activated.
    """
    script = Path(sys.executable).parent / "forgetlab"
    on_path = shutil.which("forgetlab")
    if on_path is not None or not script.exists():
        return "forgetlab"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run config YAML (see lightning_configs/)."),
        overrides: Optional[list[str]] = typer.Argument(
            None, help="KEY=VALUE overrides, e.g. lora.rank=8 train.steps=50"
        ),
        resume: Optional[str] = typer.Option(
            None, "--resume", help="Resume this MLflow run id from its last checkpoint."
        ),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="Where the run to resume lives (default: as for runs)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        print_config: bool = typer.Option(
            False, "--print-config", help="Print the resolved config (YAML, after overrides) and exit."
        ),
    ) -> None:
        """Fine-tune LoRA adapters and log L_ft and forgetting per evaluation step to MLflow.

        Example: forgetlab run --config lightning_configs/r4.yaml lora.rank=8
        """
        from rich.console import Console

        from forgetlab.config import load_run_config

        if resume:
            if config is not None or overrides:
                raise UserError("--resume continues a run with its own config; drop --config and overrides")
            run_config = _config_of_run(resume, tracking_uri)
        else:
            if config is None:
                raise UserError("missing --config; e.g. forgetlab run --config lightning_configs/r4.yaml")
            run_config = load_run_config(config, overrides or [])
        if print_config:
            from forgetlab.config import to_yaml

            return typer.echo(to_yaml(run_config), nl=False)
        from forgetlab.errors import RunInterrupted
        from forgetlab.finetune.recipe import execute_run

        try:
            result = execute_run(run_config, resume_run_id=resume, progress=not quiet)
        except RunInterrupted as stopped:  # Ctrl-C: the id is printed only at the end otherwise
            typer.echo(
                f"{stopped}; it is marked KILLED. Resume it with: {resume_command(stopped.run_id, stopped.tracking_uri)}",
                err=True,
            )
            raise typer.Exit(130) from None
        if result.tracking_uri:  # the other ranks of a multi-device run have nothing to report
            print_summary(result, Console())
