"""One complete fit of one law to one data set: fit, bootstrap, validation, identifiability.

`fit_points` is the library entry point; the CLI adds reading the points, figures and storing.
"""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from forgetlab.laws.bootstrap import BootstrapOptions, BootstrapResult, bootstrap, percentile_intervals
from forgetlab.laws.fitting import FitOptions, fit, single_threaded_blas
from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.goodness import goodness
from forgetlab.laws.identifiability import assess
from forgetlab.laws.points import Points, forgetting_column, unfittable
from forgetlab.laws.result import FitResult
from forgetlab.laws.validation import validate

OPTIMISER = "scipy.optimize.least_squares(method='trf', loss='huber', f_scale=huber_delta, x_scale='jac'), analytic Jacobian"
OBJECTIVE = "sum over points and targets of huber_delta(ln(prediction) - ln(observed))"


@dataclass(frozen=True)
class QuerySource:
    """The SQL that selected the points, recorded with the fit so it can be rerun."""

    path: Optional[str] = None
    sql: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for package in ("forgetlab", "numpy", "scipy", "pandas", "duckdb"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def fit_points(
    law: LawForm,
    points: Points,
    fit_options: FitOptions = FitOptions(),
    bootstrap_options: BootstrapOptions = BootstrapOptions(),
    run_validation: bool = True,
    query: QuerySource = QuerySource(),
) -> FitResult:
    """Fit `law` to `points` and describe everything about it (see FitResult)."""
    reason = unfittable(law, points, forgetting_column(points.variant))
    if reason:
        from forgetlab.errors import UserError

        raise UserError(f"data set '{points.dataset}': {reason}")
    reference = Reference.of(points.P, points.N) if law.uses_P() else Reference(1.0, 1.0)
    design = Design.build(points.P, points.N, points.L_ft, reference)
    y = points.targets(law)
    with single_threaded_blas():
        optimum = fit(law, design, y, fit_options)
        if np.all(np.isfinite(optimum.theta)):
            boot = bootstrap(
                law, design, y, points.run_id, optimum.theta, fit_options, bootstrap_options,
                problem=lambda index: unfittable(law, points.take(index)),
            )  # fmt: skip
        else:  # refitting replicates of a fit that failed outright only repeats the failure, slowly
            skipped = {f"not attempted: the full-data fit is {optimum.status}": bootstrap_options.B}
            boot = BootstrapResult(np.empty((0, len(law.params))), bootstrap_options.B, skipped)
        validation = validate(law, points, reference, fit_options) if run_validation else {"skipped": "turned off"}

    public = law.to_public(optimum.theta, reference)
    converted = (law.to_public(d, reference) for d in boot.draws)
    public_draws = np.array([[p[n] for n in law.public_names] for p in converted]).reshape(-1, len(law.public_names))
    low, high = percentile_intervals(public_draws, bootstrap_options.level)
    intervals = {name: [float(lo), float(hi)] for name, lo, hi in zip(law.public_names, low, high)}
    internal_low, internal_high = percentile_intervals(boot.draws, bootstrap_options.level)
    identifiability = assess(
        law, optimum, design, boot.draws, internal_low, internal_high, public,
        {k: (v[0], v[1]) for k, v in intervals.items()},
    )  # fmt: skip
    stats = goodness(law, optimum.theta, design, y)
    stats["objective"] = optimum.cost
    return FitResult(
        dataset=points.dataset,
        law=law.name,
        variant=points.variant,
        equation=law.equation,
        status=optimum.status,
        message=optimum.message,
        on_bound=list(optimum.on_bound),
        params={name: public[name] for name in law.public_names},
        intervals=intervals,
        internal={
            "names": list(law.names),
            "estimate": optimum.theta.tolist(),
            "lower": law.lower.tolist(),
            "upper": law.upper.tolist(),
            "draws": boot.draws.tolist(),
            "interval_low": internal_low.tolist(),
            "interval_high": internal_high.tolist(),
        },
        reference={"P0": reference.P0, "N0": reference.N0},
        stats=stats,
        validation=validation,
        identifiability=identifiability,
        bootstrap={
            "unit": bootstrap_options.unit,
            "B": bootstrap_options.B,
            "seed": bootstrap_options.seed,
            "level": bootstrap_options.level,
            "succeeded": boot.n_ok,
            "failed": boot.n_failed,
            "failed_by_reason": boot.failed,
            "on_bound": boot.on_bound,
            "retried_from_grid": boot.retried,
        },
        data=describe_points(law, points),
        spec=describe_spec(law, points, fit_options, bootstrap_options, query, optimum),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def describe_points(law: LawForm, points: Points) -> dict[str, Any]:
    """What the fit saw, including P per rank (so predict can turn a rank into P)."""
    data: dict[str, Any] = {
        "n_points": len(points),
        "n_runs": int(len(np.unique(points.run_id))),
        "L_f_column": forgetting_column(points.variant),
        "L_f_range": [float(points.L_f.min()), float(points.L_f.max())],
    }
    if points.L_ft is not None and np.isfinite(points.L_ft).all():
        data["L_ft_range"] = [float(points.L_ft.min()), float(points.L_ft.max())]
    if np.isfinite(points.P).all() and np.isfinite(points.N).all():
        data["P_range"] = [float(points.P.min()), float(points.P.max())]
        data["N_range"] = [float(points.N.min()), float(points.N.max())]
        per_rank = {}
        for rank in np.unique(points.rank):
            values = np.unique(points.P[points.rank == rank])
            per_rank[f"{rank:g}"] = float(values[0]) if len(values) == 1 else None
        data["P_per_rank"] = per_rank
        ratios = points.P / points.rank
        same = np.all(np.abs(ratios / ratios[0] - 1) < 1e-9)
        data["P_over_rank"] = float(ratios[0]) if same else None
    return data


def describe_spec(
    law: LawForm, points: Points, fit_options: FitOptions, bootstrap_options: BootstrapOptions,
    query: QuerySource, optimum,
) -> dict[str, Any]:  # fmt: skip
    """Everything needed to redo the fit."""
    columns = {"L_f": forgetting_column(points.variant), "L_ft": "L_ft"}
    return {
        "law": law.name,
        "equation": law.equation,
        "variant": points.variant,
        "targets": {t: columns[t] for t in law.targets},
        "inputs": list(law.inputs),
        "objective": OBJECTIVE,
        "huber_delta": fit_options.huber_delta,
        "optimiser": OPTIMISER,
        "tolerance": fit_options.tolerance,
        "max_nfev": fit_options.max_nfev,
        "starts": {"polished": optimum.starts, "agreeing": optimum.starts_agreeing, "grid": law.grid},
        "bounds": {p.name: [p.lower, p.upper] for p in law.params},
        "linear_parameters": [p.name for p in law.params if p.linear],
        "reference": "P0, N0 = geometric means of the distinct P and N of the data set",
        "gauge": law.gauge_note,
        "bootstrap": {
            **asdict(bootstrap_options),
            "resampling": "whole runs with replacement, as many as the data has",
            "refit": "warm start from the full-data optimum; a failed refit is retried from the grid",
            "intervals": "percentile",
        },
        "validation": "leave-one-rank-out and small-to-largest (= the largest rank's fold); folds fit from the grid",
        "query": asdict(query),
        "versions": versions(),
    }
