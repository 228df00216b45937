"""What `fit`, `predict` and `report` print on the terminal (rich tables): a fit, the laws compared, the
`--by` groups compared, a prediction. The report's markdown is `report_markdown.py`."""

from __future__ import annotations

from typing import Any, Optional

from forgetlab.laws.result import FitResult
from forgetlab.laws.text import interval, number, plural


def print_fit(result: FitResult, console, artifact_location: Optional[str] = None) -> None:
    """The fit's table of parameters, then its status, goodness, held-out error, bootstrap, identifiability."""
    from rich.table import Table

    identifiability = result.identifiability
    level = int(round(100 * result.bootstrap["level"]))
    weak = set(identifiability.get("weak_parameters", []))
    title = f"{_where(result)} · {result.law} · L_f={result.variant} · status [bold]{result.status}[/bold]"
    if result.fit_id:
        title += f" · fit {result.fit_id}"
    table = Table(title=title, title_justify="left")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    table.add_column(f"{level}% interval (over {_unit(result)})", justify="right")
    table.add_column("note")
    for name, value in result.params.items():
        low, high = result.intervals.get(name, [None, None])
        table.add_row(name, number(value), interval(low, high), "not identified" if name in weak else "")
    console.print(table)
    _print_bounds(result, console)
    for target, stats in result.stats.items():
        if isinstance(stats, dict):
            console.print(
                f"  {target}: R²={number(stats['r2'], 5)}  RMSE={number(stats['rmse'])}  MAE={number(stats['mae'])}  "
                f"AIC={stats['aic']:.1f}  BIC={stats['bic']:.1f}  (n={stats['n']}, k={stats['k']})"
            )
    _print_validation(result, console)
    _print_bootstrap(result, console)
    mark = "[green]identified[/green]" if identifiability["identified"] else "[yellow]NOT identified[/yellow]"
    console.print(f"  parameters {mark}: {identifiability['note']}")
    if identifiability.get("gauge"):
        console.print(f"  gauge: {identifiability['gauge']}")
    if artifact_location:
        console.print(f"  figures and fit.json: {artifact_location}")


def _print_bounds(result: FitResult, console) -> None:
    if not result.on_bound:
        return
    from forgetlab.laws.forms import get_law

    specs = {p.name: p for p in get_law(result.law).params}
    estimate = dict(zip(result.internal["names"], result.internal["estimate"]))
    for name in result.on_bound:
        console.print(
            f"  [yellow]on a bound[/yellow]: {name} = {number(estimate[name])} ({specs[name].doc}); the data want it beyond the form's range"
        )


def _print_validation(result: FitResult, console) -> None:
    validation = result.validation
    if "skipped" in validation:
        console.print(f"  held-out by rank: skipped ({validation['skipped']})")
    loro = validation.get("leave_one_rank_out", {})
    largest = validation.get("small_to_largest", {})
    later = validation.get("later_steps", {})
    for target in result.stats:
        parts = []
        if target in loro:
            parts.append(f"leave-one-rank-out RMSE={number(loro[target]['rmse'])}")
        if target in largest:
            parts.append(
                f"fit on smaller ranks, predict rank {largest['held_out_rank']}: RMSE={number(largest[target]['rmse'])}"
            )
        if target in later:
            parts.append(
                f"fit N ≤ {later['fitted_up_to_N']:g}, predict later steps: RMSE={number(later[target]['rmse'])}"
            )
        if parts:
            console.print(f"  held-out {target}: " + "; ".join(parts))


def _print_bootstrap(result: FitResult, console) -> None:
    boot = result.bootstrap
    runs = plural(result.data["n_runs"], "run")
    if boot.get("withheld"):
        console.print(f"  [yellow]no intervals[/yellow]: {boot['withheld']}")
    if boot["succeeded"] or boot["failed"]:
        jackknife = (boot.get("scheme") or "").startswith("jackknife")  # no random draws: no seed, no stream
        resampled = f", resampling {boot['summary']}" if boot.get("summary") else ""
        console.print(
            f"  {'jackknife' if jackknife else 'bootstrap'}: {boot['succeeded']}/{boot.get('replicates') or boot['B']} refits "
            f"succeeded over {runs}{resampled} ({boot['failed']} failed{_reasons(boot['failed_by_reason'])})"
            + (
                ""
                if jackknife
                else f", seed {boot['seed']}" + (f", stream '{boot['stream']}'" if boot.get("stream") else "")
            )
        )
    if boot.get("caution"):
        console.print(f"  [yellow]caution[/yellow]: {boot['caution']}")


def _unit(result: FitResult) -> str:
    """What the interval was measured over, for a column title (older fits: seeds within ranks)."""
    unit = result.bootstrap.get("unit") or "seed within rank"
    units = result.bootstrap.get("units")
    if unit == "seed":
        return f"{units} whole seeds" if units else "whole seeds"
    return unit.replace("seed within rank", "seeds within ranks").replace("run within rank", "runs within ranks")


def _where(result: FitResult) -> str:
    """The data set, with the group of a `fit --by` fit."""
    by = result.extra.get("by") if result.extra else None
    return result.dataset if by is None else f"{result.dataset} ({by}={result.extra.get('group')})"


def _reasons(reasons: dict[str, int]) -> str:
    return "" if not reasons else ": " + ", ".join(f"{v} {k}" for k, v in reasons.items())


def print_laws_compared(results: list[FitResult], console) -> None:
    """One line per fit, so forms can be compared on the same points."""
    from rich.table import Table

    table = Table(title="laws compared (L_f on the same points)", title_justify="left")
    columns = (
        "data set",
        "law",
        "status",
        "R²",
        "RMSE",
        "AIC",
        "BIC",
        "held-out RMSE",
        "largest rank RMSE",
        "later steps RMSE",
        "identified",
        "fit id",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("data set", "law", "status", "fit id") else "right")
    for r in results:
        stats = r.stats["L_f"]
        loro = r.validation.get("leave_one_rank_out", {}).get("L_f", {})
        largest = r.validation.get("small_to_largest", {}).get("L_f", {})
        later = r.validation.get("later_steps", {}).get("L_f", {})
        table.add_row(
            _where(r), r.law, r.status, number(stats["r2"], 5), number(stats["rmse"]), f"{stats['aic']:.1f}", f"{stats['bic']:.1f}",
            number(loro.get("rmse")), number(largest.get("rmse")), number(later.get("rmse")),
            "yes" if r.identifiability["identified"] else "no", r.fit_id or "-",
        )  # fmt: skip
    console.print(table)


def print_group_comparison(rows: list[dict[str, Any]], console) -> None:
    """`fit --by`: per law and quantity, each group's estimate and its difference to the baseline group."""
    from rich.table import Table

    from forgetlab.laws.compare import PAIRED

    if not rows:
        return
    first = rows[0]
    level = int(round(100 * first["level"]))
    how = (
        "paired by (rank, seed): every group resampled with the same draws of units"
        if first.get("design") == PAIRED else "groups resampled independently (own random streams; the difference's "
        "standard error is √(SE² + SE_baseline²))"
    )  # fmt: skip
    table = Table(
        title=f"{first['dataset']} · fits by {first['by']} · difference = group − baseline ({first['by']}={first['baseline']}); "
        f"{level}% intervals from differences of bootstrap draws, {how}",
        title_justify="left",
    )
    for column in ("law", "quantity", first["by"], "estimate", "interval", "difference", "interval of difference"):
        table.add_column(
            column,
            justify="right" if column in ("estimate", "interval", "difference", "interval of difference") else "left",
        )
    previous = None
    for row in rows:
        key = (row["law"], row["quantity"])
        if previous is not None and key != previous:
            table.add_section()
        previous = key
        low, high = row["interval"]
        has_difference = "difference" in row
        d_low, d_high = row.get("difference_interval", [None, None])
        excludes_zero = has_difference and d_low is not None and (d_low > 0 or d_high < 0)
        difference = number(row["difference"]) if has_difference else "baseline"
        table.add_row(
            row["law"], row["quantity"], row["group"], number(row["estimate"]), interval(low, high),
            f"[bold]{difference}[/bold]" if excludes_zero else difference,
            interval(d_low, d_high) if has_difference else "",
        )  # fmt: skip
    console.print(table)
    console.print("  bold: the interval of the difference excludes 0")


def print_prediction(
    result: FitResult, inputs: dict[str, Any], predictions: dict[str, Any], console, notes: Optional[list[str]] = None
) -> None:
    """The prediction's header (the fit and the inputs used), its table, then what qualifies it."""
    from rich.table import Table

    level = int(round(100 * result.bootstrap["level"]))
    shown = ", ".join(f"{k}={number(v, 6)}" for k, v in inputs.items() if v is not None)
    console.print(f"{result.dataset} · {result.law} · L_f={result.variant} · fit {result.fit_id}", soft_wrap=True)
    console.print(f"at {shown}", soft_wrap=True)
    table = Table()
    table.add_column("quantity")
    table.add_column("estimate", justify="right")
    table.add_column(f"{level}% interval", justify="right")
    for name, value in predictions.items():
        table.add_row(name, number(value["estimate"]), interval(value["low"], value["high"]))
    console.print(table)
    has_interval = any(value["low"] == value["low"] and value["low"] is not None for value in predictions.values())
    if not has_interval:
        why = result.bootstrap.get("withheld") or "the fit has no successful bootstrap draws"
        console.print(f"  no interval: {why}")
    if not result.identifiability.get("identified"):
        qualifier = "; the intervals include that" if has_interval else ""
        console.print(
            f"  note: parameters of this fit are not all identified ({result.identifiability['note']}){qualifier}"
        )
    for note in notes or []:
        console.print(f"  note: {note}")
