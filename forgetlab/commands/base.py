"""`forgetlab base`: build the embedded base ahead of time, and see what the cache holds.

Runs build the base on first use anyway; `base build` exists to pay those minutes up front
(e.g. before a sweep, or in a CI cache step) and to show what was built.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

# forgetlab.embedded is imported inside the commands: it costs 35 ms, which every other command
# (an export, a query) would otherwise pay at start-up.
EMBEDDED_BASE_NAMES = ("embedded", "embedded-tiny")  # the keys of forgetlab.embedded.BASE_SPECS (tested)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def register(app: typer.Typer) -> None:
    base_app = typer.Typer(
        help="Build and inspect forgetlab's embedded base models (cached, offline).", no_args_is_help=True
    )
    app.add_typer(base_app, name="base")

    @base_app.command("build")
    def build_command(
        name: str = typer.Option("embedded", "--name", help=f"Which embedded base: {', '.join(EMBEDDED_BASE_NAMES)}."),
        force: bool = typer.Option(False, "--force", help="Rebuild even if cached (not while runs use it)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Pretrain the embedded base NAME if it is not cached yet (minutes for 'embedded'), then describe it."""
        from rich.console import Console

        from forgetlab.embedded import ensure_embedded_base

        base = ensure_embedded_base(name, progress=not quiet, force=force)
        info = base.info()
        console = Console()
        console.print(
            f"embedded base [bold]{base.name}[/bold]: {info['parameters']:,} parameters, {info['tokens_seen']:,} tokens seen"
        )
        console.print(
            f"held-out loss {base.heldout_loss:.4f} nats/token (uniform ln {base.spec.vocab} = {math.log(base.spec.vocab):.4f})"
        )
        size = sum(path.stat().st_size for path in base.folder.rglob("*") if path.is_file())
        console.print(
            f"built in {info['build_seconds']:.0f} s ({info['tokens_per_second']:.0f} tokens/s), {_megabytes(size)} on disk"
        )
        console.print(
            f"base fingerprint {base.base_fingerprint[:16]}, corpus fingerprint {base.corpus_fingerprint[:16]}"
        )
        console.print(f"folder {base.folder}")

    @base_app.command("info")
    def info_command() -> None:
        """List the embedded bases and data sets in the cache, one line each."""
        from forgetlab.embedded import list_cached_bases, list_cached_datasets
        from forgetlab.locations import cache_root

        root = cache_root()
        typer.echo(f"cache: {root} (set FORGETLAB_CACHE to move it)")
        bases = list_cached_bases()
        if not bases:
            typer.echo("no embedded base built yet; `forgetlab base build` builds one (or the first run does)")
        else:
            typer.echo(f"embedded bases, in {root / 'bases'}:")
        for info in bases:
            typer.echo(
                f"  {Path(info['folder']).name}  {info['parameters'] / 1e6:.2f}M params  "
                f"{info['tokens_seen'] / 1e6:.2f}M tokens  held-out loss {info['heldout_loss']:.4f}  "
                f"built in {info['build_seconds']:.0f} s  {_megabytes(info['bytes'])}"
            )
        datasets = list_cached_datasets()
        if datasets:
            typer.echo(f"embedded data sets, in {root / 'datasets'}:")
        for info in datasets:
            typer.echo(
                f"  {Path(info['folder']).name}  {info['kind']}  train {info['train_records']:,} "
                f"({_megabytes(info['train_bytes'])})  validation {info['validation_records']:,} "
                f"({_megabytes(info['validation_bytes'])})  fingerprint {info['fingerprint'][:16]}"
            )
