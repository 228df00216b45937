"""`forgetlab fit` and `forgetlab predict`: fit the forgetting laws to points, predict from a fit.

Heavy libraries (scipy, matplotlib, mlflow, duckdb) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from forgetlab.errors import UserError

ALL_LAWS = "all"


def _check_options(bootstrap: int, level: float, huber_delta: float, starts: int) -> None:
    if bootstrap < 1:
        raise UserError(f"--bootstrap {bootstrap}: need at least 1 replicate (500 or more for intervals you report)")
    if not 0 < level < 1:
        raise UserError(f"--level {level}: give the interval coverage as a fraction, e.g. 0.95")
    if not huber_delta > 0:
        raise UserError(f"--huber-delta {huber_delta}: must be positive (1e-3 is the usual choice)")
    if starts < 1:
        raise UserError(f"--starts {starts}: must be at least 1")


def run_fits(
    query_path: Optional[Path], params: list[str], law_name: str, variant: str, dataset: Optional[str],
    bootstrap: int, seed: int, level: float, huber_delta: float, starts: int, validation: bool,
    json_path: Optional[Path], figures: Optional[Path], db: Optional[Path], tracking_uri: Optional[str], store: bool,
    console, by: Optional[str] = None, at_rank: Optional[float] = None, at_steps: Optional[float] = None,
    at_ft_loss: Optional[float] = None,
) -> list:  # fmt: skip
    """The whole `forgetlab fit`: read points, check every (law, data set) first, then fit, draw, store.

    With `by`, each data set's points are split by that column and every group is fitted apart,
    then compared with the baseline group (see `forgetlab.laws.compare`).
    """
    import dataclasses
    import tempfile
    import uuid

    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.figures import write_figures
    from forgetlab.laws.fitting import FitOptions
    from forgetlab.laws.forms import get_law, law_names
    from forgetlab.laws.pipeline import QuerySource, fit_points
    from forgetlab.laws.points import datasets_of, forgetting_column, load_points, points_for, query_parameters, resolve_query_path
    from forgetlab.laws.report import print_comparison, print_fit
    from forgetlab.laws.result import json_safe
    from forgetlab.laws.store import artifact_folder, log_fit_run, write_fit_rows
    from forgetlab.paths import default_warehouse_path
    from forgetlab.warehouse.query import load_query, parse_param

    _check_options(bootstrap, level, huber_delta, starts)
    forgetting_column(variant)
    laws = [get_law(name) for name in (law_names() if law_name == ALL_LAWS else [law_name])]
    path = resolve_query_path(query_path)
    query = load_query(path)
    overrides = dict(parse_param(p) for p in params)
    if dataset is not None and "dataset" in query.defaults and "dataset" not in overrides:
        overrides["dataset"] = dataset  # let the query filter early when it can
    db_path = Path(db) if db is not None else default_warehouse_path()
    from forgetlab.laws.points import unfinished_runs

    excluded = unfinished_runs(query.sql, db_path, dataset)
    if excluded:  # diverged or killed runs never reach a fit; say so rather than drop them silently
        console.print(f"excluded {excluded} run{'s' if excluded != 1 else ''} that did not finish (FAILED/KILLED); the points view takes FINISHED runs only")
    frame = load_points(query.sql, overrides, db_path)
    source = QuerySource(str(path), query.sql, query_parameters(query.sql, overrides))

    if by is not None:
        from forgetlab.laws.compare import attach_column, split_groups

        frame = attach_column(frame, by, db_path)
    else:
        _warn_mixed_mitigations(frame, console)
    work = []
    for name in datasets_of(frame, dataset):
        groups = split_groups(frame[frame["dataset"].astype(str) == name], by) if by is not None else [(None, frame)]
        for group_label, rows in groups:
            where = name if group_label is None else f"{name} ({by}={group_label})"
            for law in laws:
                try:
                    work.append((law, points_for(rows, law, variant, name), group_label))
                except UserError as error:
                    if law_name != ALL_LAWS:
                        raise UserError(error.message if group_label is None else f"{by}={group_label}: {error.message}") from None
                    console.print(f"[yellow]skipping {law.name} on {where}:[/yellow] {error.message}")
    if not work:
        raise UserError("no law could be fitted to these points (see the lines above)")

    fit_options = FitOptions(huber_delta=huber_delta, starts=starts)
    boot_options = BootstrapOptions(B=bootstrap, seed=seed, level=level)
    group = uuid.uuid4().hex
    results = []
    fitted = []
    with tempfile.TemporaryDirectory() as scratch:
        for law, points, group_label in work:
            where = points.dataset if group_label is None else f"{points.dataset} ({by}={group_label})"
            console.print(f"fitting {law.name} to {where} ({len(points)} points, {len(set(points.run_id))} runs, B={bootstrap}) ...")
            result = fit_points(law, points, fit_options, boot_options, validation, source)
            suffix = ""
            if group_label is not None:
                result = dataclasses.replace(result, extra={**result.extra, "by": by, "group": group_label})
                suffix = f"-{by}={group_label}"
            folder = (figures if figures is not None else Path(scratch)) / f"{points.dataset}-{law.name}-{variant}{suffix}"
            pictures = write_figures(law, points, result, folder)
            location = None
            if store:  # recorded at once, so a later failure cannot orphan this fit's MLflow run
                result = log_fit_run(result, pictures, tracking_uri, group, points)
                write_fit_rows([result], db_path)
                location = artifact_folder(result.fit_id, tracking_uri)
            print_fit(result, console, location)
            results.append(result)
            fitted.append((law, points, group_label, result))
    if store:
        console.print(f"recorded {len(results)} fit(s) in {db_path} (table fits) and MLflow experiment forgetlab-fits")
    if len(results) > 1:
        print_comparison(results, console)
    comparison = _compare_groups(fitted, by, variant, at_rank, at_steps, at_ft_loss, figures, console) if by is not None else None
    if json_path is not None:
        import json

        output = {"fits": [r.to_dict() for r in results]}
        if comparison is not None:
            output["comparison"] = comparison
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(json_safe(output), indent=2, allow_nan=False))
        console.print(f"full results: {json_path}")
    return results


MITIGATION_COLUMNS = ("replay", "kl_to_base", "l2_to_base")


def _warn_mixed_mitigations(frame, console) -> None:
    """Pooling runs with different mitigations into one law is rarely what was meant: say so."""
    for column in MITIGATION_COLUMNS:
        if column in frame.columns and frame[column].nunique(dropna=False) > 1:
            values = ", ".join(sorted(str(v) for v in frame[column].unique()))
            console.print(
                f"[yellow]note:[/yellow] the points mix runs with {column} = {values}; each law is fitted to all of "
                f"them together. Use --by {column} to fit and compare them apart."
            )


def _compare_groups(fitted, by, variant, at_rank, at_steps, at_ft_loss, figures, console) -> list:
    """Per data set: compare every group's fits with the baseline's; table, figure, rows for --json."""
    from forgetlab.laws.compare import GroupFit, compare, comparison_figure, print_comparison_by, reference_point
    from forgetlab.paths import store_folder

    rows = []
    for name in dict.fromkeys(points.dataset for _, points, _, _ in fitted):
        mine = [GroupFit(group, law, points, result) for law, points, group, result in fitted if points.dataset == name]
        at = reference_point([fit.points for fit in mine], at_rank, at_steps, at_ft_loss)
        by_law: dict[str, list] = {}
        for fit in mine:
            by_law.setdefault(fit.law.name, []).append(fit)
        groups = list(dict.fromkeys(fit.group for fit in mine))
        if len(groups) < 2:
            console.print(f"[yellow]note:[/yellow] {name}: only {by}={groups[0]} in the points; nothing to compare")
        for law_fits in by_law.values():
            law_rows = compare(law_fits, by, at)
            print_comparison_by(law_rows, console)
            rows.extend(law_rows)
        folder = figures if figures is not None else store_folder() / "comparisons"
        path = comparison_figure(by_law, by, at, folder / f"{name}-by-{by}-{variant}.png")
        if path is not None:
            console.print(f"comparison figure: {path}")
    return rows


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_command(
        query: Optional[Path] = typer.Option(None, "--query", help="SQL file returning the points view's columns (default: queries/laws.sql)."),
        param: Optional[list[str]] = typer.Option(None, "--param", help="Query parameter NAME=VALUE (overrides the file's `-- param:` default)."),
        law: str = typer.Option(ALL_LAWS, "--law", help="linear | paper-joint | power-additive | all."),
        variant: str = typer.Option("soft", "--variant", help="Forgetting measure fitted as L_f: hard | soft | kl | data (column L_f_<variant>)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Fit only this data set (default: each data set in the points)."),
        bootstrap: int = typer.Option(1000, "--bootstrap", "-B", help="Bootstrap replicates (runs resampled with replacement)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap's random draws."),
        level: float = typer.Option(0.95, "--level", help="Coverage of the percentile intervals."),
        huber_delta: float = typer.Option(1e-3, "--huber-delta", help="δ of the Huber loss on log residuals."),
        starts: int = typer.Option(8, "--starts", help="Best grid points polished by the optimiser."),
        no_validation: bool = typer.Option(False, "--no-validation", help="Skip leave-one-rank-out validation (faster)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write every fit's full result here."),
        figures: Optional[Path] = typer.Option(None, "--figures", help="Also keep the PNG figures in this folder."),
        db: Optional[Path] = typer.Option(None, "--db", help="Warehouse (DuckDB) to read points from and record fits in (default mlruns/forgetlab.duckdb)."),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store for the fit runs (default: as for runs)."),
        no_store: bool = typer.Option(False, "--no-store", help="Record nothing (no MLflow run, no fits row): for exploring."),
        by: Optional[str] = typer.Option(None, "--by", help="Fit each value of this column apart and compare the groups (e.g. replay; any column of the points or of the warehouse's runs table)."),
        at_rank: Optional[float] = typer.Option(None, "--at-rank", help="With --by: compare fitted L_f at this rank (default: the rank nearest the geometric mean of P)."),
        at_steps: Optional[float] = typer.Option(None, "--at-steps", help="With --by: compare fitted L_f at this N (default: the largest N)."),
        at_ft_loss: Optional[float] = typer.Option(None, "--at-ft-loss", help="With --by: compare the linear law's L_f at this L_ft (default: the median L_ft)."),
    ) -> None:
        """Fit the forgetting laws to points selected by SQL.

        Per data set and law: parameters with bootstrap intervals (runs resampled), goodness of
        fit, held-out error, identifiability, figures; each fit is recorded as an MLflow run
        (experiment forgetlab-fits) and a row of the warehouse's `fits` table. See docs/laws.md.

        With --by COLUMN (e.g. --by replay) each group of runs is fitted apart and compared with
        the smallest value's group: parameters and fitted L_f at a reference (P, N) and L_ft, with
        intervals from differences of bootstrap draws, and a figure overlaying the groups.

        Examples: forgetlab fit;  forgetlab fit --law linear --variant soft --dataset code;
        forgetlab fit --query my_points.sql --param min_step=100 --json fits.json;  forgetlab fit --by replay
        """
        if by is None and (at_rank, at_steps, at_ft_loss) != (None, None, None):
            raise UserError("--at-rank, --at-steps and --at-ft-loss choose where --by compares the groups; add --by COLUMN")
        run_fits(
            query, param or [], law, variant, dataset, bootstrap, seed, level, huber_delta, starts, not no_validation,
            json_path, figures, db, tracking_uri, not no_store, _console(), by, at_rank, at_steps, at_ft_loss,
        )  # fmt: skip

    @app.command("predict")
    def predict_command(
        fit: str = typer.Option(..., "--fit", help="Fit id (the fit's MLflow run id; see the fits table)."),
        rank: Optional[float] = typer.Option(None, "--rank", help="LoRA rank (P from the fitted data's P per rank)."),
        P: Optional[float] = typer.Option(None, "--P", help="Number of fine-tuned parameters."),
        steps: Optional[float] = typer.Option(None, "--steps", help="Optimizer steps N."),
        ft_loss: Optional[float] = typer.Option(None, "--ft-loss", help="L_ft (for the linear law, which predicts L_f from L_ft)."),
        max_forgetting: Optional[float] = typer.Option(None, "--max-forgetting", help="Find the steps at which L_f first exceeds this."),
        extrapolate: bool = typer.Option(False, "--extrapolate", help="Allow P or N more than 10x outside the fitted range."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Check the fit is of this data set."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the prediction here."),
        db: Optional[Path] = typer.Option(None, "--db", help="Warehouse holding the fits table (default mlruns/forgetlab.duckdb)."),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store to read fit.json from if the table lacks the fit."),
    ) -> None:
        """Predict L_f and L_ft from a stored fit, with bootstrap intervals.

        --max-forgetting X answers: how many steps at this rank before L_f passes X?

        Examples: forgetlab predict --fit <id> --rank 128 --steps 1000;
        forgetlab predict --fit <id> --rank 64 --max-forgetting 0.9
        """
        import json

        from forgetlab.laws.predict import StoredLaw, check_range, linear_threshold, predict, resolve_P, steps_to_forgetting
        from forgetlab.laws.report import print_prediction
        from forgetlab.laws.result import json_safe
        from forgetlab.laws.store import load_fit
        from forgetlab.paths import default_warehouse_path

        console = _console()
        result = load_fit(fit, dataset, db if db is not None else default_warehouse_path(), tracking_uri)
        stored = StoredLaw.of(result)
        output: dict = {"fit_id": result.fit_id, "dataset": result.dataset, "law": result.law}
        if stored.law.uses_P():
            if rank is None and P is None:
                raise UserError(f"law {result.law} needs the size of the fine-tuning: pass --rank or --P")
            P_value = resolve_P(result, rank, P)
        else:
            P_value = None
        if max_forgetting is not None:
            if stored.law.uses_P():
                check_range(result, P_value, None, None, extrapolate)
                found = steps_to_forgetting(stored, P_value, max_forgetting, extrapolate)
                output["max_forgetting"] = found
                _print_steps(found, result, rank, console)
            else:
                found = linear_threshold(stored, max_forgetting)
                output["max_forgetting"] = found
                console.print(
                    f"L_f passes {max_forgetting:g} once L_ft falls below {found['L_ft']:.4f} "
                    f"({int(round(100 * stored.level))}% interval [{found['low']:.4f}, {found['high']:.4f}])"
                )
        if steps is not None or ft_loss is not None:
            check_range(result, P_value, steps, ft_loss, extrapolate)
            predictions = predict(stored, P_value, steps, ft_loss)
            output["inputs"] = {"rank": rank, "P": P_value, "N": steps, "L_ft": ft_loss}
            output["predictions"] = predictions
            print_prediction(result, output["inputs"], predictions, console)
        elif max_forgetting is None:
            raise UserError("nothing to predict: pass --steps (and --rank or --P), --ft-loss for the linear law, or --max-forgetting")
        if json_path is not None:
            json_path.write_text(json.dumps(json_safe(output), indent=2, allow_nan=False))


def _console():
    """A terminal gets its own width; piped output gets room for the tables (rich assumes 80)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _print_steps(found: dict, result, rank: Optional[float], console) -> None:
    at = f"rank {rank:g} (P={found['P']:.4g})" if rank is not None else f"P={found['P']:.4g}"
    level = int(round(100 * result.bootstrap["level"]))
    if found["already_past"]:
        console.print(f"at {at}, L_f is above {found['threshold']:g} already at N={found['searched'][0]:g}, the start of the range searched")
    elif found["steps"] == float("inf"):
        console.print(f"at {at}, L_f stays below {found['threshold']:g} up to N={found['searched'][1]:g} (the range searched; --extrapolate searches further)")
    else:
        console.print(
            f"at {at}, L_f passes {found['threshold']:g} after N ≈ {found['steps']:.0f} steps "
            f"({level}% interval [{found['low']:.0f}, {found['high']:.0f}]; {found['draws_never_crossing']} of {found['draws']} draws never pass it in the range)"
        )
