"""Curves across runs from a query: one line per colour value, the mean over runs (seeds) and its spread.

`forgetlab plot curves.sql --x step --y forget_soft --color rank` runs the query on the
warehouse, groups its rows by the colour column, and at each x draws the mean of y over the runs
of that group with a band from the lowest to the highest run (the spread over seeds); the legend
says how many runs each line averages. Any query works as long as it returns the three columns.

A line averages runs only when they could share a curve: the same data set, and the same base
model, context length, peak lr and step budget (the rule `forgetlab fit` applies to a law's
points, `laws.comparability.mixed_column`). A line that would mix them is refused in one line naming
what differs and how to draw them apart; a band over three base models is not a spread over seeds.
The runs are looked up by the query's `run_id` column; a query without one is drawn as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from forgetlab.errors import UserError
from forgetlab.laws.comparability import COMPARABILITY, mixed_column, value_to_keep

# What the runs of one line must share: a fit's rule, plus the data set (a fit takes one at a time).
LINE_COMPARABILITY = ("dataset", *COMPARABILITY)


@dataclass(frozen=True)
class PlotRequest:
    """What to draw from which query."""

    query: Path  # SQL file whose rows are the points
    x: str  # column on the horizontal axis, e.g. step
    y: str  # column on the vertical axis, e.g. forget_soft
    color: Optional[str]  # one line per value of this column (None: one line)
    out: Path  # PNG to write
    params: dict[str, Any]  # query parameters
    db: Path  # the warehouse
    title: Optional[str] = None


@dataclass(frozen=True)
class Line:
    label: str
    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    runs: int


def _sort_key(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def summarise(frame, x: str, y: str, color: Optional[str]) -> list[Line]:
    """Mean, min and max of y over runs at each x, per colour value."""
    missing = [column for column in (x, y, color) if column and column not in frame.columns]
    if missing:
        raise UserError(
            f"the query has no column {', '.join(repr(m) for m in missing)}; its columns: {', '.join(frame.columns)}"
        )
    frame = frame.dropna(subset=[x, y])
    if frame.empty:
        raise UserError(f"the query returned no rows with both {x} and {y}; nothing to plot")
    groups = frame.groupby(color, sort=False) if color else [(None, frame)]
    lines = []
    for value, group in sorted(groups, key=lambda item: _sort_key(item[0])):
        stats = group.groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
        runs = group["run_id"].nunique() if "run_id" in group.columns else len(group) // max(len(stats), 1)
        label = f"{color}={value} ({runs} run{'s' if runs != 1 else ''})" if color else f"{runs} runs"
        lines.append(
            Line(
                label, stats.index.tolist(), stats["mean"].tolist(), stats["min"].tolist(), stats["max"].tolist(), runs
            )
        )
    return lines


def check_lines_comparable(frame, color: Optional[str], settings, query_name: str, query_params: set[str]) -> None:
    """UserError when a line would average runs that cannot share a curve (`settings`: the runs table's
    run_id and LINE_COMPARABILITY columns); the message names the line, what differs and the fix."""
    if "run_id" not in frame.columns:
        return  # the rows are not runs (an aggregate the query made): nothing to tell apart
    runs = frame.assign(_line=frame[color] if color else None)[["run_id", "_line"]].drop_duplicates()
    runs = runs.merge(settings, on="run_id", how="left")
    for value, group in sorted(runs.groupby("_line", dropna=False, sort=False), key=lambda item: _sort_key(item[0])):
        mixed = mixed_column(group, LINE_COMPARABILITY, skip=color)
        if mixed is None:
            continue
        column, values = mixed
        fixes = [f"draw them apart with --color {column}"] if column in frame.columns else []
        if column in query_params:
            fixes.append(f"keep one with --param {column}={value_to_keep(values)}")
        fixes = fixes or [f"keep one {column} in the query (WHERE runs.{column} = ...)"]
        line = f"the line {color}={value}" if color else "the plot's one line"
        raise UserError(
            f"{query_name}: {line} would average runs that cannot share a curve: {column} = {', '.join(values)}; "
            f"{', or '.join(fixes)}"
        )


def run_settings(db: Path):
    """Each run's values of the columns the runs of one line must share, from the warehouse's runs table."""
    from forgetlab.warehouse.query import run_query

    return run_query(f"SELECT run_id, {', '.join(LINE_COMPARABILITY)} FROM runs", {}, db).to_pandas()


def draw(lines: list[Line], request: PlotRequest) -> Path:
    """Write the figure as PNG; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = plt.get_cmap("viridis")(__import__("numpy").linspace(0, 0.9, max(len(lines), 1)))
    for line, colour in zip(lines, colours):
        axes.plot(line.x, line.mean, color=colour, label=line.label, linewidth=1.6)
        if line.runs > 1:
            axes.fill_between(line.x, line.low, line.high, color=colour, alpha=0.2, linewidth=0)
    axes.set_xlabel(request.x)
    axes.set_ylabel(request.y)
    axes.set_title(
        request.title or f"{request.y} by {request.x} ({request.query.name}); band: min–max over runs", fontsize=10
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    if not request.out.parent.is_dir():
        raise UserError(f"no folder {request.out.parent} for --out; create it first")
    figure.savefig(request.out, format="png")
    plt.close(figure)
    return request.out


def plot_query(request: PlotRequest) -> list[Line]:
    """Run the query on the warehouse and draw its curves to `request.out`."""
    from forgetlab.warehouse.query import check_query, load_query, run_query

    query = load_query(request.query)
    check_query(query.sql, request.params)
    frame = run_query(query.sql, request.params, request.db).to_pandas()
    lines = summarise(frame, request.x, request.y, request.color)
    check_lines_comparable(frame, request.color, run_settings(request.db), request.query.name, set(query.defaults))
    draw(lines, request)
    return lines


def log_plot(request: PlotRequest, tracking_uri: Optional[str], experiment: str) -> str:
    """Log the figure and its query as a run of kind `plot`; return the run id."""
    from forgetlab.tracking import RunTracker, names

    tracker = RunTracker(tracking_uri, experiment)
    run_id = tracker.start(
        f"plot-{request.y}-by-{request.x}", {names.KIND: "plot", names.PLOT_QUERY: request.query.name}
    )
    tracker.log_params(
        {
            "x": request.x,
            "y": request.y,
            "color": request.color or "",
            **{f"param.{k}": v for k, v in request.params.items()},
        }
    )
    tracker.log_text(request.query.read_text(), f"query/{request.query.name}")
    tracker.log_file(request.out, "figures")
    tracker.finish("FINISHED")
    return run_id
