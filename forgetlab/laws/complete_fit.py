"""One complete fit of one law to one data set: fit, bootstrap, validation, identifiability.

`fit_points` is the library entry point; the CLI adds reading the points, figures and storing.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from forgetlab.laws.bootstrap import (
    BootstrapOptions,
    BootstrapResult,
    bootstrap,
    not_attempted,
    sampling_frame,
    withheld,
)
from forgetlab.laws.fitting import FitOptions, fit, single_threaded_blas
from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.goodness import goodness
from forgetlab.laws.identifiability import assess
from forgetlab.laws.intervals import as_list, bootstrap_intervals
from forgetlab.laws.points import Points, forgetting_column, unfittable
from forgetlab.laws.result import FitResult
from forgetlab.laws.validation import validate
from forgetlab.utils.versions import package_versions

OPTIMISER = (
    "scipy.optimize.least_squares(method='trf', loss='huber', f_scale=huber_delta, x_scale='jac'), analytic Jacobian"
)
OBJECTIVE = "sum over points and targets of huber_delta(ln(prediction) - ln(observed))"


@dataclass(frozen=True)
class QuerySource:
    """The SQL that selected the points, recorded with the fit so it can be rerun."""

    path: Optional[str] = None
    sql: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """The versions a fit's numbers depend on (recorded with every fit)."""
    return package_versions(("forgetlab", "numpy", "scipy", "pandas", "duckdb"), missing=None)


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
    reference = Reference.of(points.P, points.N) if (law.uses_P() or law.uses_N()) else Reference(1.0, 1.0)
    design = Design.build(points.P, points.N, points.L_ft, reference)
    y = points.targets(law)
    with single_threaded_blas(), np.errstate(all="ignore"):
        optimum = fit(law, design, y, fit_options)
        boot = _bootstrap(law, points, design, y, optimum, fit_options, bootstrap_options)
        validation = validate(law, points, reference, fit_options) if run_validation else {"skipped": "turned off"}
    uncertainty = _uncertainty(law, reference, optimum.theta, boot, bootstrap_options)
    unreplicated = sampling_frame(points.rank, points.run_id, points.seed, bootstrap_options.unit).problem()
    identifiability = assess(
        law, optimum, design, uncertainty.draws, uncertainty.internal_low, uncertainty.internal_high,
        uncertainty.public_estimate(law, optimum.theta, reference), uncertainty.public_pairs(), uncertainty.withheld,
        unreplicated=unreplicated is not None and uncertainty.withheld == unreplicated,
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
        params=uncertainty.public_estimate(law, optimum.theta, reference),
        intervals=uncertainty.public_intervals,
        internal={
            "names": list(law.names),
            "estimate": optimum.theta.tolist(),
            "lower": law.lower.tolist(),
            "upper": law.upper.tolist(),
            "draws": uncertainty.draws.tolist(),
            "draw_replicates": boot.replicates.tolist(),
            "interval_low": uncertainty.internal_low.tolist(),
            "interval_high": uncertainty.internal_high.tolist(),
        },
        reference={"P0": reference.P0, "N0": reference.N0},
        stats=stats,
        validation=validation,
        identifiability=identifiability,
        bootstrap=describe_bootstrap(boot, bootstrap_options, uncertainty.withheld),
        data=describe_points(law, points),
        spec=describe_spec(law, points, fit_options, bootstrap_options, query, optimum),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _bootstrap(
    law, points: Points, design: Design, y, optimum, fit_options, options: BootstrapOptions
) -> BootstrapResult:
    """The replicates, or none with the reason (a design without replication, a failed fit)."""
    frame = sampling_frame(points.rank, points.run_id, points.seed, options.unit)
    problem = frame.problem()
    if problem is not None:
        return not_attempted(law, options, problem, frame)
    if not np.all(np.isfinite(optimum.theta)):  # refitting replicates of a failed fit only repeats the failure
        return not_attempted(law, options, f"the full-data fit is {optimum.status}", frame)
    if optimum.status == "not_converged":
        # The spread of refits around a point the optimiser was still moving from measures the
        # optimiser, not the data; and each such refit spends its whole budget from every start
        # (the KL variant's linear fits: minutes of a report for intervals that were withheld anyway).
        return not_attempted(
            law,
            options,
            "the full-data fit did not converge (its evaluation budget ran out), so "
            "an interval around it would not mean anything; the form may not suit these points (compare --law or --variant)",
            frame,
        )
    return bootstrap(
        law, design, y, frame, optimum.theta, fit_options, options,
        problem=lambda index: unfittable(law, points.take(index)),
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Uncertainty:
    """Intervals from the successful draws, or none (with the reason) when they are withheld."""

    draws: np.ndarray
    internal_low: np.ndarray
    internal_high: np.ndarray
    public_intervals: dict[str, list[Optional[float]]]
    """What the fit shows: clipped to the bounds of bounded parameters (see `clip_to_bounds`)."""
    withheld: Optional[str]
    unclipped: dict[str, tuple[Optional[float], Optional[float]]]
    """The same intervals before clipping: identifiability judges widths on these, as before."""

    def public_estimate(self, law: LawForm, theta: np.ndarray, reference: Reference) -> dict[str, float]:
        public = law.to_public(theta, reference)
        return {name: public[name] for name in law.public_names}

    def public_pairs(self) -> dict[str, tuple[Optional[float], Optional[float]]]:
        return dict(self.unclipped)


def _uncertainty(
    law: LawForm, reference: Reference, theta: np.ndarray, boot: BootstrapResult, options: BootstrapOptions
) -> Uncertainty:
    reason = withheld(boot, options)
    draws = boot.draws if reason is None else np.empty((0, len(law.params)))
    converted = (law.to_public(d, reference) for d in draws)
    public_draws = np.array([[p[n] for n in law.public_names] for p in converted]).reshape(-1, len(law.public_names))
    public = law.to_public(theta, reference)
    low, high = bootstrap_intervals(
        np.array([public[n] for n in law.public_names]), public_draws, options.level, boot.df
    )
    unclipped = {name: tuple(as_list((lo, hi))) for name, lo, hi in zip(law.public_names, low, high)}
    low, high = clip_to_bounds(law, low, high)
    intervals = {name: as_list((lo, hi)) for name, lo, hi in zip(law.public_names, low, high)}
    internal_low, internal_high = bootstrap_intervals(theta, draws, options.level, boot.df)
    return Uncertainty(draws, internal_low, internal_high, intervals, reason, unclipped)


def clip_to_bounds(law: LawForm, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip the shown intervals of public parameters that are internal ones (same name, same
    value: exponents, ρ) to those parameters' bounds. The symmetric t interval can reach past a
    bound (β fitted at its lower bound 1e-4 gave [−0.040, 0.040]), to values the form cannot
    take; clipping drops none of the form's own values, so it keeps the coverage of any truth
    the form can express. An exponent's bound 1e-4 stands for 0 (a logarithm), so a clipped
    `[0.000, 0.040]` still includes "no power" and is read that way; the fit's `on_bound` says so."""
    bounds = {spec.name: (spec.lower, spec.upper) for spec in law.params}
    low, high = np.array(low, dtype=float), np.array(high, dtype=float)
    for index, name in enumerate(law.public_names):
        if name in bounds:
            lower, upper = bounds[name]
            low[index], high[index] = np.clip(low[index], lower, upper), np.clip(high[index], lower, upper)
    return low, high


def describe_bootstrap(
    boot: BootstrapResult, options: BootstrapOptions, withheld_reason: Optional[str]
) -> dict[str, Any]:
    return {
        "unit": boot.unit,
        "units": boot.units,
        "summary": boot.summary,
        "caution": None if withheld_reason else boot.caution,
        "scheme": boot.scheme,
        "B": options.B,
        "replicates": boot.requested,
        "seed": options.seed,
        "stream": options.stream,
        "level": options.level,
        "succeeded": boot.n_ok,
        "failed": boot.n_failed,
        "failed_by_reason": boot.failed,
        "on_bound": boot.on_bound,
        "retried_from_grid": boot.retried,
        "withheld": withheld_reason,
        "df": boot.df,
        "interval": "estimate ± t(df)·sd of the successful draws; df = seeds − 1 (whole seeds) or Σ over ranks of (units − 1) (within ranks)",
    }


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
            "resampling": "docs/laws.md §6: whole seeds where seeds are crossed with ranks, else units within ranks (see bootstrap.scheme)",
            "refit": "warm start from the full-data optimum; a failed refit is retried from the grid",
            "intervals": "estimate ± Student-t quantile (df = seeds − 1, or Σ over ranks of units − 1) × bootstrap standard deviation",
        },
        "validation": (
            "leave-one-rank-out, small-to-largest (= the largest rank's fold) and later steps (fit N up to the median "
            "distinct N, predict the rest); folds fit from the grid"
        ),
        "query": asdict(query),
        "versions": versions(),
    }
