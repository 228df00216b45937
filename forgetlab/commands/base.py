"""`forgetlab base`: build the embedded base ahead of time, and see what the cache holds.

Runs build the base on first use anyway; `base build` exists to pay those minutes up front
(e.g. before a sweep, or in a CI cache step) and to show what was built.
"""

from __future__ import annotations

import math

import typer

from forgetlab.embedded import BASE_SPECS, cache_root, list_cached_bases, list_cached_datasets


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def register(app: typer.Typer) -> None:
    base_app = typer.Typer(help="Build and inspect forgetlab's embedded base models (cached, offline).", no_args_is_help=True)
    app.add_typer(base_app, name="base")

    @base_app.command("build")
    def build_command(
        name: str = typer.Option("embedded", "--name", help=f"Which embedded base: {', '.join(BASE_SPECS)}."),
        force: bool = typer.Option(False, "--force", help="Rebuild even if cached (not while runs use it)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Pretrain the embedded base NAME if it is not cached yet (minutes for 'embedded'), then describe it."""
        from rich.console import Console

        from forgetlab.embedded import ensure_embedded_base

        base = ensure_embedded_base(name, progress=not quiet, force=force)
        info = base.info()
        console = Console()
        console.print(f"embedded base [bold]{base.name}[/bold]: {info['parameters']:,} parameters, {info['tokens_seen']:,} tokens seen")
        console.print(
            f"held-out loss {base.heldout_loss:.4f} nats/token (uniform ln {base.spec.vocab} = {math.log(base.spec.vocab):.4f})"
        )
        size = sum(path.stat().st_size for path in base.folder.rglob("*") if path.is_file())
        console.print(f"built in {info['build_seconds']:.0f} s ({info['tokens_per_second']:.0f} tokens/s), {_megabytes(size)} on disk")
        console.print(f"base fingerprint {base.base_fingerprint[:16]}, corpus fingerprint {base.corpus_fingerprint[:16]}")
        console.print(f"folder {base.folder}")

    @base_app.command("info")
    def info_command() -> None:
        """List the embedded bases and data sets in the cache."""
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(f"cache: {cache_root()} (set FORGETLAB_CACHE to move it)")
        bases = list_cached_bases()
        if not bases:
            console.print("no embedded base built yet; `forgetlab base build` builds one (or the first run does)")
        else:
            table = Table(title="embedded bases")
            for column in ("name", "params", "tokens", "held-out loss", "built in", "size", "folder"):
                table.add_column(column)
            for info in bases:
                table.add_row(
                    info["name"],
                    f"{info['parameters']:,}",
                    f"{info['tokens_seen']:,}",
                    f"{info['heldout_loss']:.4f}",
                    f"{info['build_seconds']:.0f} s",
                    _megabytes(info["bytes"]),
                    info["folder"],
                )
            console.print(table)
        datasets = list_cached_datasets()
        if datasets:
            table = Table(title="embedded data sets")
            for column in ("name", "kind", "train", "validation", "fingerprint", "folder"):
                table.add_column(column)
            for info in datasets:
                table.add_row(
                    info["name"],
                    info["kind"],
                    f"{info['train_records']:,} ({_megabytes(info['train_bytes'])})",
                    f"{info['validation_records']:,} ({_megabytes(info['validation_bytes'])})",
                    info["fingerprint"][:16],
                    info["folder"],
                )
            console.print(table)
