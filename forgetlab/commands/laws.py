"""`forgetlab fit` and `forgetlab predict`: fit the forgetting laws to points, predict from a fit.

Heavy libraries (scipy, matplotlib, mlflow, duckdb) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from forgetlab.errors import UserError

ALL_LAWS = "all"
DEFAULT_VARIANT = "hard"  # forgetlab.laws.forms.DEFAULT_VARIANT (not imported: the CLI starts without numpy)


def register(app: typer.Typer) -> None:
    """Add fit, report and predict to the app (long only because it holds the three commands,
    whose typer options are their signatures; each command parses, calls the library, prints)."""

    @app.command("fit")
    def fit_command(
        query: Optional[Path] = typer.Option(
            None, "--query", help="SQL file returning the points view's columns (default: queries/laws.sql)."
        ),
        param: Optional[list[str]] = typer.Option(
            None, "--param", help="Query parameter NAME=VALUE (overrides the file's `-- param:` default)."
        ),
        law: str = typer.Option(
            ALL_LAWS,
            "--law",
            help="linear | linear-rank | linear-rank-steps | paper-joint | power-additive | log-steps | power-steps | all.",
        ),
        variant: str = typer.Option(
            DEFAULT_VARIANT,
            "--variant",
            help="Forgetting measure fitted as L_f: hard (default: the paper's) | soft | kl | data (column L_f_<variant>).",
        ),
        dataset: Optional[str] = typer.Option(
            None, "--dataset", help="Fit only this data set (default: each data set in the points)."
        ),
        bootstrap: int = typer.Option(
            1000,
            "--bootstrap",
            "-B",
            help="Bootstrap replicates where seeds are nested in ranks or unknown; where seeds are crossed with ranks (the default design) each seed is left out in turn instead (docs/laws.md §6).",
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap's random draws."),
        level: float = typer.Option(0.95, "--level", help="Coverage of the percentile intervals."),
        huber_delta: float = typer.Option(1e-3, "--huber-delta", help="δ of the Huber loss on log residuals."),
        starts: int = typer.Option(8, "--starts", help="Best grid points polished by the optimiser."),
        no_validation: bool = typer.Option(
            False, "--no-validation", help="Skip leave-one-rank-out validation (faster)."
        ),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write every fit's full result here."),
        figures: Optional[Path] = typer.Option(None, "--figures", help="Also keep the PNG figures in this folder."),
        db: Optional[Path] = typer.Option(
            None,
            "--db",
            help="Warehouse (DuckDB) to read points from and record fits in (default mlruns/forgetlab.duckdb).",
        ),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="MLflow store for the fit runs (default: as for runs)."
        ),
        no_store: bool = typer.Option(
            False, "--no-store", help="Record nothing (no MLflow run, no fits row): for exploring."
        ),
        no_export: bool = typer.Option(
            False, "--no-export", help="Do not export first, even if the tracking store is newer than the warehouse."
        ),
        by: Optional[str] = typer.Option(
            None,
            "--by",
            help="Fit each value of this column apart and compare the groups (e.g. replay; any column of the points or of the warehouse's runs table).",
        ),
        at_rank: Optional[float] = typer.Option(
            None,
            "--at-rank",
            help="With --by: compare fitted L_f at this rank (default: the rank nearest the geometric mean of P).",
        ),
        at_steps: Optional[float] = typer.Option(
            None, "--at-steps", help="With --by: compare fitted L_f at this N (default: the largest N)."
        ),
        at_ft_loss: Optional[float] = typer.Option(
            None,
            "--at-ft-loss",
            help="With --by: compare the linear law's L_f at this L_ft (default: the median L_ft).",
        ),
        jobs: int = typer.Option(
            1, "--jobs", "-j", min=1, help="Fits to run at once, one process each (results do not change)."
        ),
    ) -> None:
        """Fit the forgetting laws to points selected by SQL.

        Per data set and law: parameters with intervals over whole seeds (each left out in turn),
        goodness of fit, held-out error (by rank and in N), identifiability, figures; each fit is
        recorded as an MLflow run (experiment forgetlab-fits) and a row of the warehouse's `fits`
        table. Exports first when the tracking store changed. Refuses points that mix base models,
        context lengths, learning rates or step budgets. See docs/laws.md.

        With --by COLUMN (e.g. --by replay) each group of runs is fitted apart and compared with
        the smallest value's group: parameters and fitted L_f at a reference (P, N) and L_ft, with
        intervals from differences of bootstrap draws, and a figure overlaying the groups.

        Examples: forgetlab fit;  forgetlab fit --law linear-rank --variant soft --dataset code;
        forgetlab fit --param min_step=100 --json fits.json;  forgetlab fit --by replay;  forgetlab fit --jobs 2
        """
        from forgetlab.laws.fit_frontend import FitRequest, run_fits

        request = FitRequest(
            query_path=query, params=tuple(param or ()), law=law, variant=variant, dataset=dataset, bootstrap=bootstrap,
            seed=seed, level=level, huber_delta=huber_delta, starts=starts, validation=not no_validation,
            json_path=json_path, figures=figures, db=db, tracking_uri=tracking_uri, store=not no_store,
            export=not no_export, by=by, at_rank=at_rank, at_steps=at_steps, at_ft_loss=at_ft_loss, jobs=jobs,
        )  # fmt: skip
        run_fits(request, _console())

    @app.command("report")
    def report_command(
        folder: Path = typer.Argument(..., help="Folder holding the study's points.parquet (e.g. docs/results/study)."),
        bootstrap: int = typer.Option(
            200,
            "--bootstrap",
            "-B",
            help="Bootstrap replicates per fit where seeds are nested in ranks or unknown (crossed seeds: each left out in turn instead).",
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap's random draws."),
        min_step: int = typer.Option(50, "--min-step", help="Keep N > min-step in the main tables (the paper's 50)."),
        laws: Optional[str] = typer.Option(
            None, "--laws", help="Comma-separated laws of table 1 (default: every law)."
        ),
        jobs: int = typer.Option(
            1, "--jobs", "-j", min=1, help="Fits to run at once, one process each (results do not change)."
        ),
        others: Optional[list[Path]] = typer.Option(
            None,
            "--with",
            help="Another results folder whose points are fitted beside FOLDER's as their own sets (e.g. a long-N arm); refused if it ran on another base.",
        ),
    ) -> None:
        """Regenerate every results table and figure of docs/results.md from a study's points.

        Reads FOLDER/points.parquet (all steps: forgetlab query queries/laws.sql -p min_step=-1
        --format parquet --output FOLDER/points.parquet); writes FOLDER/fits.json,
        FOLDER/results.md and FOLDER/figures/. Intervals resample whole seeds where seeds are
        crossed with ranks; points or folders of different base models are refused.
        Example: forgetlab report docs/results/study
        """
        from forgetlab.laws.report_frontend import ReportRequest, run_report

        chosen = tuple(name.strip() for name in laws.split(",") if name.strip()) if laws else None
        request = ReportRequest(folder, bootstrap, seed, min_step, chosen, jobs, tuple(others or ()))
        path = run_report(request, _console())
        _console().print(f"wrote {path}, {path.parent / 'fits.json'} and {path.parent / 'figures'}/")

    @app.command("predict")
    def predict_command(
        fit: str = typer.Option(
            ...,
            "--fit",
            help="Fit id (the fit's MLflow run id; see the fits table), its first 6+ characters, or a law's name for that law's latest fit.",
        ),
        rank: Optional[float] = typer.Option(None, "--rank", help="LoRA rank (P from the fitted data's P per rank)."),
        P: Optional[float] = typer.Option(None, "--P", help="Number of fine-tuned parameters."),
        steps: Optional[float] = typer.Option(None, "--steps", help="Optimizer steps N."),
        ft_loss: Optional[float] = typer.Option(
            None, "--ft-loss", help="L_ft (for the linear law, which predicts L_f from L_ft)."
        ),
        max_forgetting: Optional[float] = typer.Option(
            None, "--max-forgetting", help="Find the steps at which L_f first exceeds this."
        ),
        extrapolate: bool = typer.Option(
            False, "--extrapolate", help="Allow P or N more than 10x outside the fitted range."
        ),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Check the fit is of this data set."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the prediction here."),
        db: Optional[Path] = typer.Option(
            None, "--db", help="Warehouse holding the fits table (default mlruns/forgetlab.duckdb)."
        ),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="MLflow store to read fit.json from if the table lacks the fit."
        ),
    ) -> None:
        """Predict L_f and L_ft from a stored fit, with bootstrap intervals.

        --max-forgetting X answers: how many steps at this rank before L_f passes X? Choose X
        within or above the fitted L_f range the fit prints (hard forgetting by default).

        --fit takes a fit id or a law's name: --fit paper-joint is the latest paper-joint fit (of
        --dataset, when several data sets were fitted). Laws in P and N (paper-joint,
        power-additive, log-steps, power-steps) predict from --rank and --steps; the linear laws
        from --ft-loss (linear-rank also --rank, linear-rank-steps also --steps). Options a law
        does not use are named and left out; inputs outside the fitted range are said to be an
        extrapolation (more than 10x outside: refused without --extrapolate).

        Examples: forgetlab predict --fit paper-joint --rank 128 --steps 1000;
        forgetlab predict --fit <id> --rank 64 --max-forgetting 0.9  (a paper-scale hard L_f);
        forgetlab predict --fit linear --ft-loss 0.7
        """
        import json

        from forgetlab.laws.predict import (
            StoredLaw,
            check_range,
            inputs_text,
            predict,
            range_notes,
            require_inputs,
            resolve_P,
            unused_inputs,
        )
        from forgetlab.laws.result import json_safe
        from forgetlab.laws.store import load_fit
        from forgetlab.laws.terminal import print_prediction
        from forgetlab.locations import default_warehouse_path

        console = _console()
        result = load_fit(fit, dataset, db if db is not None else default_warehouse_path(), tracking_uri)
        stored = StoredLaw.of(result)
        law = stored.law
        output: dict = {"fit_id": result.fit_id, "dataset": result.dataset, "law": result.law}
        predicting = steps is not None or ft_loss is not None
        if predicting:
            require_inputs(stored, rank if rank is not None else P, steps, ft_loss)
        if law.uses_P():
            if rank is None and P is None:
                raise UserError(f"law {result.law} needs the size of the fine-tuning: pass --rank or --P")
            P_value = resolve_P(result, rank, P)
        else:
            P_value = None
        ignored = unused_inputs(law, rank, P, steps, ft_loss)
        unused = " and ".join(ignored) + (" is" if len(ignored) == 1 else " are")
        notes = [f"law {law.name} predicts from {inputs_text(law)} only: {unused} not used"] if ignored else []
        rank_used = rank if law.uses_P() else None
        steps_used = steps if law.uses_N() else None
        ft_loss_used = ft_loss if "L_ft" in law.inputs else None
        if max_forgetting is not None:
            output["max_forgetting"] = _answer_threshold(
                stored, P_value, rank_used, max_forgetting, extrapolate, console
            )
        if predicting:
            check_range(result, P_value, steps_used, ft_loss_used, extrapolate)
            predictions = predict(stored, P_value, steps_used, ft_loss_used)
            output["inputs"] = {"rank": rank_used, "P": P_value, "N": steps_used, "L_ft": ft_loss_used}
            output["predictions"] = predictions
            notes += range_notes(result, rank_used, P_value, steps_used, ft_loss_used)
            print_prediction(result, output["inputs"], predictions, console, notes)
        elif max_forgetting is None:
            raise UserError(
                "nothing to predict: pass --steps (and --rank or --P), --ft-loss for the linear law, or --max-forgetting"
            )
        else:
            notes += range_notes(result, rank_used, P_value, None, None)
            for note in notes:
                console.print(f"  note: {note}")
        if notes:
            output["notes"] = notes
        if json_path is not None:
            json_path.write_text(json.dumps(json_safe(output), indent=2, allow_nan=False))


def _console():
    """A terminal gets its own width; piped output gets room for the tables (rich assumes 80)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _answer_threshold(stored, P_value, rank, threshold: float, extrapolate: bool, console) -> dict:
    """--max-forgetting: steps before L_f passes it (a law in P and N), or the L_ft it corresponds to (linear)."""
    from forgetlab.laws.predict import check_range, linear_threshold, steps_to_forgetting
    from forgetlab.laws.text import fixed, interval

    result = stored.result
    if stored.law.uses_P():
        check_range(result, P_value, None, None, extrapolate)
        found = steps_to_forgetting(stored, P_value, threshold, extrapolate)
        _print_steps(found, result, rank, console)
        return found
    found = linear_threshold(stored, threshold)
    level = int(round(100 * stored.level))
    console.print(
        f"L_f passes {threshold:g} once L_ft falls below {fixed(found['L_ft'], 4)} ({level}% interval {interval(found['low'], found['high'])})"
    )
    return found


def _print_steps(found: dict, result, rank: Optional[float], console) -> None:
    at = f"rank {rank:g} (P={found['P']:.4g})" if rank is not None else f"P={found['P']:.4g}"
    level = int(round(100 * result.bootstrap["level"]))
    if found["already_past"]:
        fitted = found.get("fitted_L_f_range")
        span = (
            f"; this fit's L_f spans {fitted[0]:.4g}..{fitted[1]:.4g} nats, so choose a threshold in or above that"
            if fitted
            else ""
        )
        console.print(
            f"at {at}, L_f is above {found['threshold']:g} already at N={found['searched'][0]:g}, the start of the range searched{span}"
        )
    elif found["steps"] == float("inf"):
        console.print(
            f"at {at}, L_f stays below {found['threshold']:g} up to N={found['searched'][1]:g} (the range searched; --extrapolate searches further)"
        )
    else:
        console.print(
            f"at {at}, L_f passes {found['threshold']:g} after N ≈ {found['steps']:.0f} steps "
            f"({level}% interval [{found['low']:.0f}, {found['high']:.0f}]; {found['draws_never_crossing']} of {found['draws']} draws never pass it in the range)"
        )
