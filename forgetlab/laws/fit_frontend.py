"""`forgetlab fit` as a library call: a `FitRequest` in, fitted and recorded `FitResult`s out.

The CLI parses its options into a FitRequest and calls `run_fits`, a front-end over the fitting
engine (`engine.py`) in named phases: select the points (`selection.py`), plan one `FitJob` per
(data set, group, law), each checked before any fitting (runs that cannot share a law are refused:
`comparability.REFUSE`), then run the jobs (`--jobs` at a time) into the sinks (`sinks.py`):
figures, the fit store, the terminal, the `--by` comparison, JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from forgetlab.errors import UserError
from forgetlab.laws.forms import DEFAULT_VARIANT
from forgetlab.laws.text import plural

ALL_LAWS = "all"
MITIGATION_COLUMNS = ("replay", "kl_to_base", "l2_to_base")


@dataclass(frozen=True)
class FitRequest:
    """Everything `forgetlab fit` was asked to do (the CLI's options, typed and checked)."""

    query_path: Optional[Path] = None
    """SQL file returning the points view's columns; None: queries/laws.sql."""
    params: tuple[str, ...] = ()
    """Query parameters as NAME=VALUE (override the file's `-- param:` defaults)."""
    law: str = ALL_LAWS
    """A law's name, or `all`."""
    variant: str = DEFAULT_VARIANT
    """Forgetting measure fitted as L_f (column L_f_<variant>)."""
    dataset: Optional[str] = None
    """Fit only this data set; None: each data set in the points."""
    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95
    huber_delta: float = 1e-3
    starts: int = 8
    validation: bool = True
    json_path: Optional[Path] = None
    figures: Optional[Path] = None
    """Also keep the PNG figures here."""
    db: Optional[Path] = None
    """The warehouse; None: mlruns/forgetlab.duckdb."""
    tracking_uri: Optional[str] = None
    store: bool = True
    """Record each fit (MLflow run and `fits` row)."""
    export: bool = True
    """Export first when the tracking store is newer than the warehouse (as `forgetlab query` does)."""
    by: Optional[str] = None
    at_rank: Optional[float] = None
    at_steps: Optional[float] = None
    at_ft_loss: Optional[float] = None
    jobs: int = 1
    """Fits run at once, each in its own process (the results do not depend on it)."""

    def check(self) -> None:
        """One-line refusals of option values, before anything is read."""
        from forgetlab.laws.points import forgetting_column

        if self.bootstrap < 1:
            raise UserError(
                f"--bootstrap {self.bootstrap}: need at least 1 replicate (500 or more for intervals you report)"
            )
        if not 0 < self.level < 1:
            raise UserError(f"--level {self.level}: give the interval coverage as a fraction, e.g. 0.95")
        if not self.huber_delta > 0:
            raise UserError(f"--huber-delta {self.huber_delta}: must be positive (1e-3 is the usual choice)")
        if self.starts < 1:
            raise UserError(f"--starts {self.starts}: must be at least 1")
        if self.jobs < 1:
            raise UserError(f"--jobs {self.jobs}: must be at least 1")
        if self.by is None and (self.at_rank, self.at_steps, self.at_ft_loss) != (None, None, None):
            raise UserError(
                "--at-rank, --at-steps and --at-ft-loss choose where --by compares the groups; add --by COLUMN"
            )
        forgetting_column(self.variant)

    @property
    def db_path(self) -> Path:
        from forgetlab.locations import default_warehouse_path

        return Path(self.db) if self.db is not None else default_warehouse_path()


@dataclass(frozen=True, eq=False)
class Plan:
    """The fits to do, and per data set how `--by` groups are compared (`compare.design_of`)."""

    jobs: list
    designs: dict[str, str]


@dataclass(frozen=True, eq=False)
class Selection:
    """The points read (a DataFrame), the query that read them, and what its early-step cut left out."""

    frame: Any
    source: Any
    cut_note: Optional[str] = None


def run_fits(request: FitRequest, console) -> list:
    """The whole `forgetlab fit`: select points, check every fit first, then fit, draw, store, compare."""
    import tempfile

    from forgetlab.laws.engine import run

    request.check()
    _check_writable(request)
    selection = select(request, console)
    plan = make_plan(request, selection, console)
    with tempfile.TemporaryDirectory() as scratch:
        fitted = run(plan.jobs, sinks(request, plan, Path(scratch), console), request.jobs, console)
    return [item.result for item in fitted]


def sinks(request: FitRequest, plan: Plan, scratch: Path, console) -> list:
    """Where the fits go, in this order: figures (kept in --figures, else drawn for the store only),
    the MLflow run and `fits` row, the terminal, the --by comparison, --json."""
    from forgetlab.laws.sinks import FigureFiles, FitsJson, FitStore, GroupComparison, TerminalTables
    from forgetlab.locations import store_folder

    chosen: list = []
    if request.figures is not None or request.store:
        chosen.append(FigureFiles(request.figures if request.figures is not None else scratch))
    if request.store:
        chosen.append(FitStore(request.tracking_uri, request.db_path, console))
    chosen.append(TerminalTables(console))
    comparison = None
    if request.by is not None:
        folder = request.figures if request.figures is not None else store_folder() / "comparisons"
        at = (request.at_rank, request.at_steps, request.at_ft_loss)
        comparison = GroupComparison(request.by, at, plan.designs, folder, request.variant, console)
        chosen.append(comparison)
    if request.json_path is not None:
        chosen.append(FitsJson(request.json_path, comparison, console))
    return chosen


def _check_writable(request: FitRequest) -> None:
    """A fit that records itself writes the tracking store and the warehouse: refused now if either cannot be written."""
    if not request.store:
        return
    from forgetlab.locations import resolve_tracking_uri
    from forgetlab.tracking.store import WRITABLE_FIX, check_store_writable
    from forgetlab.utils.writable import why_not_writable

    check_store_writable(
        resolve_tracking_uri(request.tracking_uri), f"{WRITABLE_FIX}; or pass --no-store to fit without recording"
    )
    problem = why_not_writable(request.db_path)
    if problem:
        raise UserError(
            f"the warehouse {request.db_path} cannot be written ({problem}); export to a writable "
            "place (forgetlab export --db PATH) and fit with --db PATH, or pass --no-store to fit without recording"
        )


def select(request: FitRequest, console) -> Selection:
    """Read the points (exporting first when stale) and say what the query left out."""
    from forgetlab.laws.complete_fit import QuerySource
    from forgetlab.laws.points import load_points, query_parameters, resolve_query_path, unfinished_runs
    from forgetlab.laws.selection import cut_note, refresh_warehouse
    from forgetlab.warehouse.query import load_query, parse_param

    path = resolve_query_path(request.query_path)
    query = load_query(path)
    overrides = dict(parse_param(p) for p in request.params)
    if request.dataset is not None and "dataset" in query.defaults and "dataset" not in overrides:
        overrides["dataset"] = request.dataset  # let the query filter early when it can
    db_path = request.db_path
    if request.export:
        refresh_warehouse(query.sql, request.tracking_uri, db_path, console)
    excluded = unfinished_runs(query.sql, db_path, request.dataset)
    if excluded:  # diverged or killed runs never reach a fit; say so rather than drop them silently
        console.print(
            f"excluded {plural(excluded, 'run')} that did not finish (FAILED/KILLED); the points view takes FINISHED runs only"
        )
    frame = load_points(query.sql, overrides, db_path)
    note = cut_note(query.sql, overrides, frame, db_path)
    if note:
        console.print(f"[yellow]note:[/yellow] {note}")
    if request.by is not None:
        from forgetlab.laws.compare import attach_column

        frame = attach_column(frame, request.by, db_path)
    else:
        _warn_mixed_mitigations(frame, console)
    return Selection(frame, QuerySource(str(path), query.sql, query_parameters(query.sql, overrides)), note)


def _groups(request: FitRequest, rows) -> tuple[list, Optional[str]]:
    """(label, rows) per group (one unnamed group without --by), and the comparison design."""
    if request.by is None:
        return [(None, rows)], None
    from forgetlab.laws.compare import INDEPENDENT, design_of, split_groups

    groups = split_groups(rows, request.by)
    return groups, (design_of(groups) if len(groups) > 1 else INDEPENDENT)


def make_plan(request: FitRequest, selection: Selection, console) -> Plan:
    """Every (data set, group, law) to fit, each checked now so no fit starts on bad points."""
    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.comparability import REFUSE, comparable_sets, shared_keys, varying_columns
    from forgetlab.laws.compare import PAIRED
    from forgetlab.laws.engine import FitJob, resampling_note
    from forgetlab.laws.fitting import FitOptions
    from forgetlab.laws.forms import get_law, law_names

    laws = [get_law(name) for name in (law_names() if request.law == ALL_LAWS else [request.law])]
    fit_options = FitOptions(huber_delta=request.huber_delta, starts=request.starts)
    pools = set.intersection(*(set(law.pools) for law in laws))  # what every chosen law may pool
    frame, jobs, designs = selection.frame, [], {}
    for name in _datasets(frame, request.dataset, selection.cut_note):
        groups, designs[name] = _groups(request, frame[frame["dataset"].astype(str) == name])
        for label, rows in groups:
            where = name if label is None else f"{name} ({request.by}={label})"
            # One set, or refused; columns every chosen law pools (LawForm.pools) may vary.
            [(_, rows)] = comparable_sets(rows, f"data set '{where}'", REFUSE, skip=(request.by, *pools))
            keys, pooled = shared_keys(rows), dict(varying_columns(rows, skip=request.by))
            if pooled:
                mixed = " and ".join(f"{column} = {', '.join(values)}" for column, values in pooled.items())
                reasons = "; ".join(f"{law.name}: {law.pools_because}" for law in laws)
                console.print(f"[yellow]note:[/yellow] {where}: pooling runs of {mixed} ({reasons})")
            extra = (
                ({"comparability": keys} if keys else {})
                | ({"pooled": pooled} if pooled else {})
                | ({"by": request.by, "group": label} if label is not None else {})
            )
            stream = None if designs[name] in (None, PAIRED) else f"{request.by}={label}"
            options = BootstrapOptions(B=request.bootstrap, seed=request.seed, level=request.level, stream=stream)
            for law in laws:
                points = _checked_points(request, rows, law, name, label, where, selection.cut_note, console)
                if points is None:
                    continue
                counts = f"{plural(len(points), 'point')}, {plural(len(set(points.run_id)), 'run')}"
                title = f"{law.name} to {where} ({counts}, {resampling_note(points, options)})"
                jobs.append(FitJob((name, label, law.name), law.name, points, fit_options, options, request.validation,
                                   selection.source, extra, title))  # fmt: skip
    if not jobs:
        raise UserError("no law could be fitted to these points (see the lines above)")
    return Plan(jobs, designs)


def _datasets(frame, dataset: Optional[str], note: Optional[str]) -> list[str]:
    """The data sets to fit; when there are none, the refusal also names what the cut left out."""
    from forgetlab.laws.points import datasets_of

    try:
        return datasets_of(frame, dataset)
    except UserError as error:
        raise UserError(f"{error.message}; {note}" if note else error.message) from None


def _checked_points(request: FitRequest, rows, law, name: str, label, where: str, note: Optional[str], console):
    """The law's points of one data set or group, or None (with a line) when `all` skips it."""
    from forgetlab.laws.points import points_for

    try:
        return points_for(rows, law, request.variant, name)
    except UserError as error:
        message = error.message if label is None else f"{request.by}={label}: {error.message}"
        if note:
            message += f" ({note})"
        if request.law != ALL_LAWS:
            raise UserError(message) from None
        console.print(f"[yellow]skipping {law.name} on {where}:[/yellow] {message}")
        return None


def _warn_mixed_mitigations(frame, console) -> None:
    """Pooling runs with different mitigations into one law is rarely what was meant: say so."""
    for column in MITIGATION_COLUMNS:
        if column in frame.columns and frame[column].nunique(dropna=False) > 1:
            values = ", ".join(sorted(str(v) for v in frame[column].unique()))
            console.print(
                f"[yellow]note:[/yellow] the points mix runs with {column} = {values}; each law is fitted to all of "
                f"them together. Use --by {column} to fit and compare them apart."
            )
