"""The `forgetlab` command line: one typer app, one module per group of commands.

Each module under `forgetlab/commands/` exposes `register(app)`. Command modules must stay
cheap to import (no torch, lightning or transformers at module level): `forgetlab query`
answers in well under a second because heavy imports happen inside the command bodies.
"""

from __future__ import annotations

import os
import sys

import typer
import typer.main

from forgetlab.errors import UserError

# MLflow otherwise phones home on import and on every run; forgetlab works offline.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's INFO lines ("Creating initial MLflow database tables...") are noise in a terminal.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# Its artifact download bar would be the only non-error line of a failing `run --resume`.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

app = typer.Typer(
    name="forgetlab",
    help="Measure, track, query and fit forgetting when LoRA fine-tuning language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from forgetlab import __version__

        typer.echo(f"forgetlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Measure, track, query and fit forgetting when LoRA fine-tuning language models."""


def _register_commands() -> None:
    from forgetlab.commands import REGISTERED_MODULES

    for module in REGISTERED_MODULES:
        module.register(app)


_register_commands()


def _flags_without_value(command) -> None:
    """Show flags as taking no value in the help: typer's rich help writes `<bool>` beside `--dry-run`.

    An empty metavar is what typer prints in the type column; the help option is made here
    (click makes it lazily and caches it) so that `--help` is listed the same way.
    """
    from typer._click import Context

    for param in [*command.params, command.get_help_option(Context(command))]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for child in getattr(command, "commands", {}).values():
        _flags_without_value(child)


def command():
    """The click command of the app, as `forgetlab` runs it."""
    built = typer.main.get_command(app)
    _flags_without_value(built)
    return built


def main() -> None:
    """Console entry point: run the app, turning a `UserError` into one line and its exit code."""
    try:
        # Outside standalone mode click returns a `typer.Exit`'s code instead of exiting with it.
        code = command()(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
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
    except Exception as error:  # click's usage errors (unknown command, missing option, bad value)
        if isinstance(error, _click_exception_types()):
            if type(error).__name__ == "NoArgsIsHelpError":  # the help is on screen already
                sys.exit(error.exit_code)
            typer.secho(f"error: {usage_error_line(error)}", err=True, fg=typer.colors.RED)
            sys.exit(2)
        raise


def _click_exception_types() -> tuple[type, ...]:
    """click's base exception, from typer's vendored copy (typer >= 0.20) and click itself."""
    import importlib

    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def usage_error_line(error: Exception) -> str:
    """click prints usage, a hint and the error on several lines; forgetlab says it in one."""
    message = " ".join(error.format_message().split()).rstrip(".")
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "forgetlab"
    return f"{message}; see `{command} --help`"


if __name__ == "__main__":  # pragma: no cover
    main()
