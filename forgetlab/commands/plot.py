"""`forgetlab plot`: curves across runs from a query, to PNG (and to MLflow when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("plot")
    def plot_command(
        query: Path = typer.Argument(
            ..., help="SQL file returning the columns to plot (see queries/; a shipped name like curves.sql works too)."
        ),
        x: str = typer.Option("step", "--x", help="Column on the horizontal axis."),
        y: str = typer.Option("forget_soft", "--y", help="Column on the vertical axis."),
        color: Optional[str] = typer.Option(
            "rank", "--color", help="One line per value of this column ('' for one line)."
        ),
        out: Path = typer.Option(Path("forgetlab-plot.png"), "--out", "-o", help="PNG to write."),
        params: list[str] = typer.Option([], "--param", "-p", help="Query parameter NAME=VALUE (repeatable)."),
        title: Optional[str] = typer.Option(None, "--title", help="Figure title (default: y by x and the query)."),
        db: Optional[Path] = typer.Option(None, "--db", help="DuckDB warehouse (default: mlruns/forgetlab.duckdb)."),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="Store to export from when stale, and to log to."
        ),
        log_to_mlflow: bool = typer.Option(
            False, "--log-to-mlflow", help="Also log the PNG and the query as a run of kind plot."
        ),
        experiment: str = typer.Option("forgetlab", "--experiment", help="Experiment of that run."),
    ) -> None:
        """Draw y against x for every run a query returns: mean over runs per colour value, band min–max.

        Example: forgetlab plot queries/curves.sql --x step --y forget_hard --color rank --out fig.png
        """
        from forgetlab.locations import default_tracking_uri, default_warehouse_path
        from forgetlab.plot import PlotRequest, log_plot, plot_query
        from forgetlab.shipped import find_shipped
        from forgetlab.warehouse import export_warehouse
        from forgetlab.warehouse.freshness import stale_reason
        from forgetlab.warehouse.query import parse_param

        if not query.exists() and query.parent in (Path("queries"), Path(".")):
            query = find_shipped(query.name)  # a shipped query by name, also outside the checkout
        warehouse = db if db is not None else default_warehouse_path()
        uri = tracking_uri or default_tracking_uri()
        if stale_reason(uri, warehouse):  # plot what the store holds now, as `forgetlab query` does
            typer.echo(export_warehouse(uri, warehouse).summary(), err=True)
        request = PlotRequest(
            query, x, y, color or None, out, dict(parse_param(item) for item in params), warehouse, title
        )
        lines = plot_query(request)
        typer.echo(
            f"wrote {out}: {len(lines)} line{'s' if len(lines) != 1 else ''} ({', '.join(line.label for line in lines)})"
        )
        if log_to_mlflow:
            typer.echo(f"logged to MLflow run {log_plot(request, tracking_uri, experiment)} (experiment {experiment})")
