"""`forgetlab export` and `forgetlab query`: the DuckDB warehouse from the command line.

Module-level imports are typer only: the warehouse (duckdb, pyarrow) is imported inside the
commands, and MLflow only for a server export, so `forgetlab export` and `query` start fast.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator, Optional

import typer


def _progress_factory(enabled: bool):
    """A rich progress bar on stderr per reading phase, or None when not wanted."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def factory(description: str, total: int):
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task(description, total=total)
        bar.start()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.advance(task, n)
            if done >= total:
                bar.stop()

        return advance

    return factory


class _NoPandas:
    """An import hook refusing pandas (see `_without_pandas`)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by forgetlab export")
        return None


@contextlib.contextmanager
def _without_pandas() -> Iterator[None]:
    """Keep pyarrow from importing pandas during an export in this command's own process.

    pyarrow imports pandas (0.2 s of CPU, 15% of a 1.2 M-point export) the first time it builds
    any array, only to ask whether the input is a pandas object; the export never hands it one.
    Refused, pyarrow notes "no pandas" and goes on; code that really needs pandas later
    (`to_pandas`) imports it again. A library caller of `export_warehouse` is not affected.
    """
    if "pandas" in sys.modules:
        yield
        return
    sys.meta_path.insert(0, _NoPandas)
    try:
        yield
    finally:
        sys.meta_path.remove(_NoPandas)


def _export(tracking_uri: Optional[str], db: Optional[Path], full: bool, progress: bool, to_stderr: bool) -> None:
    """Export and print the one-line summary (on stderr when a query's data owns stdout)."""
    from forgetlab.warehouse import export_warehouse

    with _without_pandas():
        report = export_warehouse(
            tracking_uri, db, full=full, progress=_progress_factory(progress and sys.stderr.isatty())
        )
    typer.echo(report.summary(), err=to_stderr)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        tracking_uri: Optional[str] = typer.Option(
            None,
            "--tracking-uri",
            help="MLflow store: sqlite:///PATH, a PostgreSQL backend store postgresql://USER@HOST:PORT/DB "
            "(read-only, direct) or an http(s)://server "
            "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)",
        ),
        db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse (default: mlruns/forgetlab.duckdb)"),
        full: bool = typer.Option(False, "--full", help="Re-read every run, not only new or changed ones."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal."),
    ) -> None:
        """Copy runs, params, tags and metric histories from MLflow into DuckDB (incremental, atomic)."""
        _export(tracking_uri, db, full, progress, to_stderr=False)

    @app.command("query")
    def query_command(
        file: Optional[Path] = typer.Argument(None, help="A .sql file (see queries/), e.g. queries/laws.sql."),
        sql: Optional[str] = typer.Option(None, "-e", "--execute", help="SQL text instead of a file."),
        params: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, bound as $NAME (repeatable)."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json, markdown or parquet."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
        max_rows: int = typer.Option(100, "--max-rows", help="Rows shown by --format table (0: all)."),
        db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse (default: mlruns/forgetlab.duckdb)"),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Store to export from when stale."),
        no_export: bool = typer.Option(False, "--no-export", help="Do not export first, even if the store is newer."),
    ) -> None:
        """Run read-only SQL over the warehouse (exporting first if the SQLite store changed)."""
        from forgetlab.errors import UserError
        from forgetlab.locations import default_tracking_uri, default_warehouse_path
        from forgetlab.warehouse.freshness import stale_reason
        from forgetlab.warehouse.output import FORMATS, write_result
        from forgetlab.warehouse.query import check_query, load_query, parse_param, parse_query, run_query

        if (file is None) == (sql is None):
            raise UserError("give exactly one of a query file (forgetlab query queries/laws.sql) or -e 'SELECT ...'")
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if fmt == "parquet" and output is None:
            raise UserError("--format parquet writes a binary file: add --output PATH.parquet")
        query = load_query(file) if file is not None else parse_query(sql or "")
        values = dict(parse_param(item) for item in params)
        check_query(query.sql, values)  # bad or writing SQL is refused before any export

        uri = tracking_uri or default_tracking_uri()
        warehouse = db if db is not None else default_warehouse_path()
        reason = stale_reason(uri, warehouse)
        if reason and not no_export:
            _export(uri, warehouse, full=False, progress=True, to_stderr=True)
        elif reason and warehouse.exists():  # (no warehouse at all: run_query says so, in one line)
            typer.echo(f"note: the warehouse may be stale ({reason}); run `forgetlab export` to refresh", err=True)
        table = run_query(query.sql, values, warehouse)
        write_result(table, fmt, output, max_rows)
