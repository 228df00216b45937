"""Terminal output of fits and predictions (rich tables)."""

from __future__ import annotations

from typing import Any, Optional

from forgetlab.laws.result import FitResult


def _num(value: Optional[float], digits: int = 4) -> str:
    if value is None or value != value:
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def print_fit(result: FitResult, console, artifact_location: Optional[str] = None) -> None:
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
    table.add_column(f"{level}% interval (bootstrap over runs)", justify="right")
    table.add_column("note")
    for name, value in result.params.items():
        low, high = result.intervals.get(name, [None, None])
        table.add_row(name, _num(value), f"[{_num(low)}, {_num(high)}]", "not identified" if name in weak else "")
    console.print(table)
    if result.on_bound:
        from forgetlab.laws.forms import get_law

        specs = {p.name: p for p in get_law(result.law).params}
        estimate = dict(zip(result.internal["names"], result.internal["estimate"]))
        for name in result.on_bound:
            console.print(f"  [yellow]on a bound[/yellow]: {name} = {_num(estimate[name])} ({specs[name].doc}); the data want it beyond the form's range")
    for target, stats in result.stats.items():
        if isinstance(stats, dict):
            console.print(
                f"  {target}: R²={_num(stats['r2'], 5)}  RMSE={_num(stats['rmse'])}  MAE={_num(stats['mae'])}  "
                f"AIC={stats['aic']:.1f}  BIC={stats['bic']:.1f}  (n={stats['n']}, k={stats['k']})"
            )
    validation = result.validation
    if "skipped" in validation:
        console.print(f"  held-out: skipped ({validation['skipped']})")
    else:
        loro = validation["leave_one_rank_out"]
        largest = validation["small_to_largest"]
        for target in result.stats:
            if target in loro:
                line = f"  held-out {target}: leave-one-rank-out RMSE={_num(loro[target]['rmse'])}"
                if target in largest:
                    line += f"; fit on smaller ranks, predict rank {largest['held_out_rank']}: RMSE={_num(largest[target]['rmse'])}"
                console.print(line)
    boot = result.bootstrap
    console.print(
        f"  bootstrap: {boot['succeeded']}/{boot['B']} refits over {result.data['n_runs']} runs "
        f"({boot['failed']} failed{_reasons(boot['failed_by_reason'])}), seed {boot['seed']}"
    )
    mark = "[green]identified[/green]" if identifiability["identified"] else "[yellow]NOT identified[/yellow]"
    console.print(f"  parameters {mark}: {identifiability['note']}")
    if identifiability.get("gauge"):
        console.print(f"  gauge: {identifiability['gauge']}")
    if artifact_location:
        console.print(f"  figures and fit.json: {artifact_location}")


def _where(result: FitResult) -> str:
    """The data set, with the group of a `fit --by` fit."""
    by = result.extra.get("by") if result.extra else None
    return result.dataset if by is None else f"{result.dataset} ({by}={result.extra.get('group')})"


def _reasons(reasons: dict[str, int]) -> str:
    return "" if not reasons else ": " + ", ".join(f"{v} {k}" for k, v in reasons.items())


def print_comparison(results: list[FitResult], console) -> None:
    """One line per fit, so forms can be compared on the same points."""
    from rich.table import Table

    table = Table(title="laws compared (L_f on the same points)", title_justify="left")
    for column in ("data set", "law", "status", "R²", "RMSE", "AIC", "BIC", "held-out RMSE", "largest rank RMSE", "identified", "fit id"):
        table.add_column(column, justify="left" if column in ("data set", "law", "status", "fit id") else "right")
    for r in results:
        stats = r.stats["L_f"]
        loro = r.validation.get("leave_one_rank_out", {}).get("L_f", {})
        largest = r.validation.get("small_to_largest", {}).get("L_f", {})
        table.add_row(
            _where(r), r.law, r.status, _num(stats["r2"], 5), _num(stats["rmse"]), f"{stats['aic']:.1f}", f"{stats['bic']:.1f}",
            _num(loro.get("rmse")), _num(largest.get("rmse")), "yes" if r.identifiability["identified"] else "no", r.fit_id or "-",
        )  # fmt: skip
    console.print(table)


def print_prediction(result: FitResult, inputs: dict[str, Any], predictions: dict[str, Any], console) -> None:
    from rich.table import Table

    level = int(round(100 * result.bootstrap["level"]))
    shown = ", ".join(f"{k}={_num(v, 6)}" for k, v in inputs.items() if v is not None)
    table = Table(title=f"{result.dataset} · {result.law} · fit {result.fit_id} · {shown}", title_justify="left")
    table.add_column("quantity")
    table.add_column("estimate", justify="right")
    table.add_column(f"{level}% interval", justify="right")
    for name, value in predictions.items():
        table.add_row(name, _num(value["estimate"]), f"[{_num(value['low'])}, {_num(value['high'])}]")
    console.print(table)
    if not result.identifiability.get("identified"):
        console.print(f"  note: parameters of this fit are not all identified ({result.identifiability['note']}); intervals include that")
