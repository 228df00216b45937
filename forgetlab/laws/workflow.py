"""`forgetlab fit` as a library call: a `FitRequest` in, fitted and recorded `FitResult`s out.

The CLI parses its options into a FitRequest and calls `run_fits`; everything else happens here,
in named phases: select the points (`selection.py`), plan the (law, data set, group) fits and
check each before any fitting, fit and record each, compare groups (`compare.py`), write JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
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

    def check(self) -> None:
        """One-line refusals of option values, before anything is read."""
        from forgetlab.laws.points import forgetting_column

        if self.bootstrap < 1:
            raise UserError(f"--bootstrap {self.bootstrap}: need at least 1 replicate (500 or more for intervals you report)")
        if not 0 < self.level < 1:
            raise UserError(f"--level {self.level}: give the interval coverage as a fraction, e.g. 0.95")
        if not self.huber_delta > 0:
            raise UserError(f"--huber-delta {self.huber_delta}: must be positive (1e-3 is the usual choice)")
        if self.starts < 1:
            raise UserError(f"--starts {self.starts}: must be at least 1")
        if self.by is None and (self.at_rank, self.at_steps, self.at_ft_loss) != (None, None, None):
            raise UserError("--at-rank, --at-steps and --at-ft-loss choose where --by compares the groups; add --by COLUMN")
        forgetting_column(self.variant)

    @property
    def db_path(self) -> Path:
        from forgetlab.locations import default_warehouse_path

        return Path(self.db) if self.db is not None else default_warehouse_path()


@dataclass(frozen=True, eq=False)
class Planned:
    """One fit to do: a law, one data set's (or group's) points, and its bootstrap stream."""

    law: Any
    points: Any
    group: Optional[str] = None
    stream: Optional[str] = None
    design: Optional[str] = None
    keys: dict = field(default_factory=dict)
    """What the runs share (model, base_fingerprint, ...): recorded with the fit as `extra.comparability`."""


@dataclass(frozen=True, eq=False)
class Selection:
    """The points read (a DataFrame), the query that read them, and what its early-step cut left out."""

    frame: Any
    source: Any
    cut_note: Optional[str] = None


def run_fits(request: FitRequest, console) -> list:
    """The whole `forgetlab fit`: select points, check every fit first, then fit, draw, store, compare."""
    request.check()
    _check_writable(request)
    selection = select(request, console)
    plan = make_plan(request, selection, console)
    fitted = fit_all(request, plan, selection.source, console)
    results = [result for _, result in fitted]
    if len(results) > 1:
        from forgetlab.laws.report import print_comparison

        print_comparison(results, console)
    comparison = compare_groups(request, fitted, console) if request.by is not None else None
    if request.json_path is not None:
        write_json(request.json_path, results, comparison)
        console.print(f"full results: {request.json_path}")
    return results


def _check_writable(request: FitRequest) -> None:
    """A fit that records itself writes the tracking store and the warehouse: refused now if either cannot be written."""
    if not request.store:
        return
    from forgetlab.locations import resolve_tracking_uri
    from forgetlab.tracking.store import WRITABLE_FIX, check_store_writable
    from forgetlab.utils.writable import why_not_writable

    check_store_writable(resolve_tracking_uri(request.tracking_uri), f"{WRITABLE_FIX}; or pass --no-store to fit without recording")
    problem = why_not_writable(request.db_path)
    if problem:
        raise UserError(f"the warehouse {request.db_path} cannot be written ({problem}); export to a writable "
                        "place (forgetlab export --db PATH) and fit with --db PATH, or pass --no-store to fit without recording")


def select(request: FitRequest, console) -> Selection:
    """Read the points (exporting first when stale) and say what the query left out."""
    from forgetlab.laws.pipeline import QuerySource
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
        console.print(f"excluded {plural(excluded, 'run')} that did not finish (FAILED/KILLED); the points view takes FINISHED runs only")
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


def make_plan(request: FitRequest, selection: Selection, console) -> list[Planned]:
    """Every (law, data set, group) to fit, each checked now so no fit starts on bad points."""
    from forgetlab.laws.compare import PAIRED
    from forgetlab.laws.forms import get_law, law_names
    from forgetlab.laws.selection import check_comparable, shared_keys

    laws = [get_law(name) for name in (law_names() if request.law == ALL_LAWS else [request.law])]
    frame, plan = selection.frame, []
    for name in _datasets(frame, request.dataset, selection.cut_note):
        groups, design = _groups(request, frame[frame["dataset"].astype(str) == name])
        for label, rows in groups:
            where = name if label is None else f"{name} ({request.by}={label})"
            check_comparable(rows, f"data set '{where}'", request.by)
            keys = shared_keys(rows)
            stream = None if design in (None, PAIRED) else f"{request.by}={label}"
            for law in laws:
                points = _checked_points(request, rows, law, name, label, where, selection.cut_note, console)
                if points is not None:
                    plan.append(Planned(law, points, label, stream, design, keys))
    if not plan:
        raise UserError("no law could be fitted to these points (see the lines above)")
    return plan


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


def fit_all(request: FitRequest, plan: list[Planned], source, console) -> list[tuple[Planned, Any]]:
    """Fit, draw and (unless --no-store) record each planned fit, printing each as it ends."""
    import tempfile

    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.fitting import FitOptions
    from forgetlab.laws.pipeline import fit_points

    fit_options = FitOptions(huber_delta=request.huber_delta, starts=request.starts)
    group = uuid.uuid4().hex
    fitted = []
    with tempfile.TemporaryDirectory() as scratch:
        for item in plan:
            where = item.points.dataset if item.group is None else f"{item.points.dataset} ({request.by}={item.group})"
            runs = plural(len(set(item.points.run_id)), "run")
            console.print(f"fitting {item.law.name} to {where} ({plural(len(item.points), 'point')}, {runs}, B={request.bootstrap}) ...")
            options = BootstrapOptions(B=request.bootstrap, seed=request.seed, level=request.level, stream=item.stream)
            result = fit_points(item.law, item.points, fit_options, options, request.validation, source)
            if item.keys:
                result = replace(result, extra={**result.extra, "comparability": item.keys})
            if item.group is not None:
                result = replace(result, extra={**result.extra, "by": request.by, "group": item.group})
            result = _record(request, item, result, Path(scratch), group, console)
            fitted.append((item, result))
    if request.store:
        console.print(f"recorded {plural(len(fitted), 'fit')} in {request.db_path} (table fits) and MLflow experiment forgetlab-fits")
    return fitted


def _record(request: FitRequest, item: Planned, result, scratch: Path, group: str, console):
    """Figures, then (when storing) the MLflow run and the `fits` row, at once: a later failure cannot orphan it."""
    from forgetlab.laws.figures import write_figures
    from forgetlab.laws.report import print_fit
    from forgetlab.laws.store import artifact_folder, log_fit_run, write_fit_rows

    suffix = "" if item.group is None else f"-{request.by}={item.group}"
    base = request.figures if request.figures is not None else scratch
    pictures = write_figures(item.law, item.points, result, base / f"{item.points.dataset}-{item.law.name}-{request.variant}{suffix}")
    location = None
    if request.store:
        result = log_fit_run(result, pictures, request.tracking_uri, group, item.points)
        write_fit_rows([result], request.db_path)
        location = artifact_folder(result.fit_id, request.tracking_uri)
    print_fit(result, console, location)
    return result


def _warn_mixed_mitigations(frame, console) -> None:
    """Pooling runs with different mitigations into one law is rarely what was meant: say so."""
    for column in MITIGATION_COLUMNS:
        if column in frame.columns and frame[column].nunique(dropna=False) > 1:
            values = ", ".join(sorted(str(v) for v in frame[column].unique()))
            console.print(
                f"[yellow]note:[/yellow] the points mix runs with {column} = {values}; each law is fitted to all of "
                f"them together. Use --by {column} to fit and compare them apart."
            )


def compare_groups(request: FitRequest, fitted: list, console) -> list:
    """Per data set: compare every group's fits with the baseline's; table, figure, rows for --json."""
    from forgetlab.laws.compare import GroupFit, compare, comparison_figure, print_comparison_by, reference_point
    from forgetlab.locations import store_folder

    by, rows = request.by, []
    for name in dict.fromkeys(item.points.dataset for item, _ in fitted):
        mine = [(item, GroupFit(item.group, item.law, item.points, result)) for item, result in fitted if item.points.dataset == name]
        at = reference_point([fit.points for _, fit in mine], request.at_rank, request.at_steps, request.at_ft_loss)
        by_law: dict[str, list] = {}
        for _, fit in mine:
            by_law.setdefault(fit.law.name, []).append(fit)
        groups = list(dict.fromkeys(fit.group for _, fit in mine))
        if len(groups) < 2:
            console.print(f"[yellow]note:[/yellow] {name}: only {by}={groups[0]} in the points; nothing to compare")
        design = mine[0][0].design
        for law_fits in by_law.values():
            law_rows = compare(law_fits, by, at, design)
            print_comparison_by(law_rows, console)
            rows.extend(law_rows)
        folder = request.figures if request.figures is not None else store_folder() / "comparisons"
        path = comparison_figure(by_law, by, at, folder / f"{name}-by-{by}-{request.variant}.png")
        if path is not None:
            console.print(f"comparison figure: {path}")
    return rows


def write_json(path: Path, results: list, comparison: Optional[list]) -> None:
    import json

    from forgetlab.laws.result import json_safe

    output: dict[str, Any] = {"fits": [r.to_dict() for r in results]}
    if comparison is not None:
        output["comparison"] = comparison
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(output), indent=2, allow_nan=False))
