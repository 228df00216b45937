"""`forgetlab configs list|show|copy`: the run configs, sweeps and queries that ship with forgetlab."""

from __future__ import annotations

from pathlib import Path

import typer

configs_app = typer.Typer(help="List, show and copy the shipped run configs, sweeps and queries.", no_args_is_help=True)


@configs_app.command("list")
def list_command() -> None:
    """List the shipped files with what each is for.

    Example: forgetlab configs list
    """
    from rich.console import Console
    from rich.table import Table

    from forgetlab.shipped import SHIPPED, description, shipped_files

    console = Console()
    for kind, (folder, _) in SHIPPED.items():
        table = Table(title=f"{kind} ({folder}/)", title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("what it is")
        for path in shipped_files(kind):
            table.add_row(path.name, description(path))
        console.print(table)
    console.print("copy one to edit it: forgetlab configs copy r4.yaml my-run.yaml")


@configs_app.command("show")
def show_command(name: str = typer.Argument(..., help="A shipped file, e.g. r4.yaml, sweep, laws.sql.")) -> None:
    """Print a shipped config or query.

    Example: forgetlab configs show sweep-smoke.yaml
    """
    from forgetlab.shipped import find_shipped

    typer.echo(find_shipped(name).read_text(), nl=False)


@configs_app.command("copy")
def copy_command(
    name: str = typer.Argument(..., help="A shipped file, e.g. r4.yaml."),
    destination: Path = typer.Argument(..., help="File or existing folder to copy it to."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
) -> None:
    """Copy a shipped config or query to edit it (a sweep's base is copied beside it when missing).

    Example: forgetlab configs copy r4.yaml my-run.yaml
    """
    from forgetlab.shipped import copy_shipped

    for written in copy_shipped(name, destination, force):
        typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.add_typer(configs_app, name="configs")
