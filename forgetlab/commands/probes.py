"""`forgetlab probes`: write small probe files forgetlab makes itself, to try the probes offline."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    probes_app = typer.Typer(
        help="Downstream probes (multiple choice, refusal, samples): see docs/probes.md.", no_args_is_help=True
    )
    app.add_typer(probes_app, name="probes")

    @probes_app.command("fixtures")
    def fixtures_command(
        out: Path = typer.Option(..., "--out", help="Folder to write the files to (created if missing)."),
    ) -> None:
        """Write multiple_choice.jsonl (ARC format), refusal.csv (AdvBench format) and docstring_cloze.jsonl.

        Example: forgetlab probes fixtures --out probe_files
        then: forgetlab run --config lightning_configs/r4.yaml probes.multiple_choice.source=probe_files/multiple_choice.jsonl
        """
        from forgetlab.probes.fixtures import write_fixtures

        for path in write_fixtures(out):
            lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
            typer.echo(f"{path} ({lines} lines)")
