"""The `forgetlab` command line: one typer app, one module per group of commands.

Each module under `forgetlab/commands/` exposes `register(app)`. Command modules must stay
cheap to import (no torch, lightning or transformers at module level): `forgetlab query`
answers in well under a second because heavy imports happen inside the command bodies.
"""

from __future__ import annotations

import os
import sys

import typer

from forgetlab.errors import UserError

# MLflow otherwise phones home on import and on every run; forgetlab works offline.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's INFO lines ("Creating initial MLflow database tables...") are noise in a terminal.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

app = typer.Typer(
    name="forgetlab",
    help="Measure, track, query and fit forgetting when LoRA fine-tuning language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from forgetlab.commands import REGISTERED_MODULES

    for module in REGISTERED_MODULES:
        module.register(app)


_register_commands()


def main() -> None:
    """Console entry point: run the app, turning a `UserError` into one line and its exit code."""
    try:
        app(standalone_mode=False)
    except UserError as error:
        typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(2)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
