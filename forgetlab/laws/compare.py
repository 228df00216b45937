"""`forgetlab fit --by COLUMN`: fit each group of runs apart and say how the laws differ.

The question it answers (for `--by replay`): at equal fine-tuning loss, how much less do I
forget, and how do the laws in P and N move? Per data set, the points are split by the value of
COLUMN (a column of the points query, else of the warehouse's `runs` table joined on run_id),
every law is fitted to every group as usual (each fit is a normal fit, recorded with
`extra.by` / `extra.group`), and each group is compared with the baseline group (the smallest
value, e.g. replay = 0):

- every public parameter, except those paper-joint's gauge leaves undetermined;
- the fitted L_f (and L_ft for paper-joint) at a reference (P, N): the measured rank whose P is
  nearest (in log) the geometric mean of the distinct P, and the largest N (end of training),
  unless `--at-rank` / `--at-steps` say otherwise;
- for the linear laws, L_f at a reference fine-tuning loss: the median L_ft of all the data set's
  points unless `--at-ft-loss` says otherwise ("at equal L_ft"), and at the reference rank (and N)
  where the law has a term in P (and N).

Intervals of a difference are t intervals (`intervals.py`) from the draws (bootstrap refits, or
the seed jackknife's pseudo-draws). How the draws are combined follows the design (`design_of`):

- *paired*: every group has runs at the same (rank, seed) units — runs of one seed see the same
  fine-tuning batches whatever the group — so every group is resampled with the *same* random
  stream (or leaves out the same seed), replicate i draws the same units in every group, and draw
  i of the group minus draw i of the baseline (matched by replicate number) is a draw of the
  paired difference;
- *independent*: otherwise every group gets its own random stream (`BootstrapOptions.stream` =
  the group's label), and the difference's standard error is √(SE² + SE_baseline²), the two fits'
  spreads combined. (Before, every group used the same seed, so groups of equal size were paired
  by accident, and difference intervals came out far too narrow; matching independent draws by
  order, the next version, has no meaning for a jackknife, whose few pseudo-draws are not random.)

The table (`terminal.print_group_comparison`) says which design was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from forgetlab.errors import UserError
from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.intervals import as_list, bootstrap_interval, bootstrap_intervals, independent_difference_interval
from forgetlab.laws.plotting import pyplot, save
from forgetlab.laws.points import Points
from forgetlab.laws.result import FitResult

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# paper-joint's public parameters that its two exact symmetries leave undetermined (docs/laws.md §2).
GAUGE_DEPENDENT = {"paper-joint": {"a_f", "a_ft", "b_f", "b_ft", "c_ft", "c_f_ft", "s_f_ft"}}
CURVE_POINTS = 120


def attach_column(frame, by: str, db_path: Path):
    """The points with column `by`: from the query itself, else from `runs` in the warehouse."""
    if by in frame.columns:
        return frame
    if not NAME.match(by):
        raise UserError(f"--by {by!r}: give a column name (letters, digits, _), e.g. --by replay")
    from forgetlab.warehouse.query import run_query

    if not Path(db_path).exists():
        raise UserError(
            f"--by {by}: the points have no column '{by}' and there is no warehouse at {db_path} to take it from"
        )
    try:
        runs = run_query(f'SELECT run_id, "{by}" FROM runs', {}, db_path).to_pandas()
    except UserError:
        columns = run_query("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'", {}, db_path)
        known = ", ".join(columns.column("column_name").to_pylist())
        raise UserError(
            f"--by {by}: neither the points nor the warehouse's runs table have a column '{by}' (runs has: {known})"
        ) from None
    return frame.merge(runs.drop_duplicates("run_id"), on="run_id", how="left")


def label(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "NULL"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def split_groups(frame, by: str) -> list[tuple[str, Any]]:
    """(label, rows) per distinct value of `by`, smallest first (numbers by value); NULL last."""
    import pandas as pd

    values = frame[by]
    numeric = pd.to_numeric(values, errors="coerce")
    is_numeric = bool(numeric.notna().sum() == values.notna().sum())
    keys = numeric if is_numeric else values.astype("string")
    groups = []
    for key in sorted(keys.dropna().unique(), key=lambda k: float(k) if is_numeric else str(k)):
        groups.append((label(key), frame[keys == key]))
    if keys.isna().any():
        groups.append(("NULL", frame[keys.isna()]))
    return groups


@dataclass(frozen=True, eq=False)
class GroupFit:
    group: str
    law: LawForm
    points: Points
    result: FitResult

    @property
    def reference(self) -> Reference:
        return Reference(self.result.reference["P0"], self.result.reference["N0"])

    @property
    def estimate(self) -> np.ndarray:
        return np.array(self.result.internal["estimate"], dtype=float)

    @property
    def draws(self) -> np.ndarray:
        return np.array(self.result.internal.get("draws") or [], dtype=float).reshape(-1, len(self.law.params))

    @property
    def df(self):
        return self.result.bootstrap.get("df")

    @property
    def replicates(self) -> np.ndarray:
        """The replicate number of each draw (older fits lack it: their order)."""
        numbers = self.result.internal.get("draw_replicates")
        return np.array(numbers if numbers is not None else range(len(self.draws)), dtype=int)


PAIRED = "paired"
INDEPENDENT = "independent"


def unit_keys(rows) -> frozenset:
    """The (rank, seed) units of one group's points (run ids where there is no seed column)."""
    strata = rows["rank"] if "rank" in rows.columns else rows["P"] if "P" in rows.columns else [0.0] * len(rows)
    units = (
        rows["seed"].astype(float)
        if "seed" in rows.columns and rows["seed"].notna().all()
        else rows["run_id"].astype(str)
    )
    return frozenset(zip(list(strata), list(units)))


def design_of(groups: list) -> str:
    """PAIRED when every group holds the same (rank, seed) units and seeds are known, else INDEPENDENT."""
    if len(groups) < 2 or any("seed" not in rows.columns or rows["seed"].isna().any() for _, rows in groups):
        return INDEPENDENT
    first = unit_keys(groups[0][1])
    return PAIRED if all(unit_keys(rows) == first for _, rows in groups[1:]) else INDEPENDENT


def reference_point(
    points: list[Points], at_rank: Optional[float], at_steps: Optional[float], at_ft_loss: Optional[float]
) -> dict[str, Optional[float]]:
    """(P, N, L_ft) at which the groups are compared, from all groups' points of one data set."""
    P = np.concatenate([p.P for p in points])
    rank = np.concatenate([p.rank for p in points])
    N = np.concatenate([p.N for p in points])
    L_ft = (
        np.concatenate([p.L_ft for p in points if p.L_ft is not None])
        if any(p.L_ft is not None for p in points)
        else np.array([])
    )
    found: dict[str, Optional[float]] = {"rank": None, "P": None, "N": None, "L_ft": None}
    if np.isfinite(P).all() and P.size:
        if at_rank is not None:
            matching = P[rank == at_rank]
            if matching.size == 0:
                raise UserError(
                    f"--at-rank {at_rank:g}: no points at that rank; ranks present: {', '.join(f'{r:g}' for r in np.unique(rank))}"
                )
            found["rank"], found["P"] = float(at_rank), float(matching[0])
        else:
            distinct = np.unique(P)
            middle = np.exp(np.mean(np.log(distinct)))
            chosen = distinct[np.argmin(np.abs(np.log(distinct) - np.log(middle)))]
            found["P"], found["rank"] = float(chosen), float(rank[P == chosen][0])
    if np.isfinite(N).all() and N.size:
        found["N"] = float(at_steps) if at_steps is not None else float(N.max())
    finite_ft = L_ft[np.isfinite(L_ft)]
    if at_ft_loss is not None:
        found["L_ft"] = float(at_ft_loss)
    elif finite_ft.size:
        found["L_ft"] = float(np.median(finite_ft))
    return found


def _quantities(fit: GroupFit, at: dict[str, Optional[float]], theta: np.ndarray) -> dict[str, float]:
    """The compared numbers of one parameter vector: public parameters and predictions at `at`."""
    law = fit.law
    public = law.to_public(theta, fit.reference)
    skip = GAUGE_DEPENDENT.get(law.name, set())
    values = {name: float(public[name]) for name in law.public_names if name not in skip}
    if "L_ft" in law.inputs:
        # The law's L_f at the reference L_ft, and at the reference rank and N where it has terms in them
        # (linear-rank: L_f at L_ft = 4.418, rank 16).
        wanted = {"L_ft": True, "P": law.uses_P(), "N": law.uses_N()}
        if all(at[key] is not None for key, used in wanted.items() if used):
            P, N = (at["P"] if law.uses_P() else np.nan), (at["N"] if law.uses_N() else np.nan)
            design = Design.build(np.array([P]), np.array([N]), np.array([at["L_ft"]]), fit.reference)
            where = f"L_ft={at['L_ft']:.4g}" + (f", rank {at['rank']:g}" if law.uses_P() else "")
            where += f", N={at['N']:g}" if law.uses_N() else ""
            values[f"L_f at {where}"] = float(law.predict(theta, design)[law.targets.index("L_f"), 0])
    elif law.uses_P() and at["P"] is not None and at["N"] is not None:
        design = Design.build(np.array([at["P"]]), np.array([at["N"]]), None, fit.reference)
        prediction = law.predict(theta, design)[:, 0]
        where = f"rank {at['rank']:g}, N={at['N']:g}"
        for row, target in enumerate(law.targets):
            values[f"{target} at {where}"] = float(prediction[row])
    return values


def _difference_draws(fit: GroupFit, own: np.ndarray, baseline: GroupFit, base: np.ndarray, design: str) -> np.ndarray:
    """Draws of group − baseline: matched by replicate number (paired) or by order (independent)."""
    if design == PAIRED:
        common, mine, theirs = np.intersect1d(fit.replicates, baseline.replicates, return_indices=True)
        return own[mine] - base[theirs]
    paired = min(len(own), len(base))
    return own[:paired] - base[:paired]


def _difference_df(fit: GroupFit, baseline: GroupFit):
    """Degrees of freedom of a difference: the smaller of the two designs' (conservative)."""
    known = [d for d in (fit.df, baseline.df) if d is not None]
    return min(known) if known else None


def compare(
    fits: list[GroupFit], by: str, at: dict[str, Optional[float]], design: str = INDEPENDENT
) -> list[dict[str, Any]]:
    """Rows (law, quantity, group, estimate, interval, difference to the baseline, its interval).

    `fits` are one data set's fits of one law, baseline (smallest value) first.
    """
    rows: list[dict[str, Any]] = []
    if not fits:
        return rows
    baseline = fits[0]
    level = float(baseline.result.bootstrap["level"])
    estimates = [_quantities(fit, at, fit.estimate) for fit in fits]
    draws = [[_quantities(fit, at, d) for d in fit.draws] for fit in fits]
    # Predictions (what a researcher compares) first, then the parameters.
    names = sorted(estimates[0], key=lambda name: (" at " not in name, list(estimates[0]).index(name)))
    for name in names:
        base_draws = np.array([d[name] for d in draws[0]], dtype=float)
        for fit, estimate, own_draws in zip(fits, estimates, draws):
            own = np.array([d[name] for d in own_draws], dtype=float)
            row = {
                "dataset": fit.points.dataset, "law": fit.law.name, "by": by, "group": fit.group,
                "baseline": baseline.group, "quantity": name, "estimate": estimate[name],
                "interval": as_list(bootstrap_interval(estimate[name], own, level, fit.df)), "fit_id": fit.result.fit_id, "level": level,
                "design": design,
            }  # fmt: skip
            if fit is not baseline:
                difference = _difference_draws(fit, own, baseline, base_draws, design)
                row["difference"] = estimate[name] - estimates[0][name]
                df = _difference_df(fit, baseline)
                if design == PAIRED:
                    interval = bootstrap_interval(row["difference"], difference, level, df)
                else:
                    interval = independent_difference_interval(row["difference"], own, base_draws, level, df)
                row["difference_interval"] = as_list(interval)
                row["paired_draws"] = int(difference.size)
            rows.append(row)
    return rows


def comparison_figure(
    fits_by_law: dict[str, list[GroupFit]], by: str, at: dict[str, Optional[float]], path: Path
) -> Optional[Path]:
    """Left: L_f against L_ft per group with each group's linear law (at equal L_ft, lower is less
    forgetting). Right: L_f against N at the reference rank, observed and fitted by a law in P and
    N, with the bootstrap band, per group."""
    any_fits = next(iter(fits_by_law.values()), [])
    if not any_fits:
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    groups = [fit.group for fit in any_fits]
    cmap = plt.get_cmap("viridis")
    colour = {g: cmap(i / max(len(groups) - 1, 1) * 0.9) for i, g in enumerate(groups)}
    for fit in any_fits:
        points = fit.points
        if points.L_ft is not None and np.isfinite(points.L_ft).all():
            lines = "linear" in fits_by_law  # the lines carry the legend; without them the points do
            label = None if lines else f"{by}={fit.group}"
            left.scatter(points.L_ft, points.L_f, s=5, alpha=0.35, color=colour[fit.group], label=label)
    for fit in fits_by_law.get("linear", []):
        x = np.linspace(fit.points.L_ft.min(), fit.points.L_ft.max(), CURVE_POINTS)
        c, s = fit.result.params["c"], fit.result.params["s"]
        left.plot(
            x, -c * x + s, color=colour[fit.group], lw=1.6, label=f"{by}={fit.group}: L_f = −{c:.3f}·L_ft + {s:.3f}"
        )
    if at["L_ft"] is not None:
        left.axvline(at["L_ft"], color="grey", ls="--", lw=0.8)
    left.set_xlabel("L_ft (fine-tuning loss, nats)")
    left.set_ylabel(f"L_f ({any_fits[0].points.variant} forgetting, nats)")
    left.set_title(f"{any_fits[0].points.dataset}: forgetting at equal fine-tuning loss, by {by}", fontsize=9)
    left.legend(fontsize=7)

    curve_fits = fits_by_law.get("paper-joint") or fits_by_law.get("power-additive") or []
    for fit in any_fits:
        points = fit.points
        if at["P"] is not None:
            sel = points.P == at["P"]
            right.scatter(points.N[sel], points.L_f[sel], s=7, alpha=0.5, color=colour[fit.group])
    for fit in curve_fits:
        if at["P"] is None:
            break
        N = np.linspace(fit.points.N.min(), fit.points.N.max(), CURVE_POINTS)
        design = Design.build(np.full(N.shape, at["P"]), N, None, fit.reference)
        row = fit.law.targets.index("L_f")
        right.plot(
            N,
            fit.law.predict(fit.estimate, design)[row],
            color=colour[fit.group],
            lw=1.6,
            label=f"{by}={fit.group} ({fit.law.name})",
        )
        if len(fit.draws):
            band = np.array([fit.law.predict(d, design)[row] for d in fit.draws])
            curve = fit.law.predict(fit.estimate, design)[row]
            low, high = bootstrap_intervals(curve, band, float(fit.result.bootstrap["level"]), fit.df)
            right.fill_between(N, low, high, color=colour[fit.group], alpha=0.15, lw=0)
    right.set_xlabel("N (optimizer steps)")
    right.set_ylabel("L_f (nats)")
    right.set_title(f"L_f(N) at rank {at['rank']:g}" if at["rank"] is not None else "L_f(N)", fontsize=9)
    if curve_fits:
        right.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)
