"""The points a fit uses: read through SQL, checked, and turned into arrays per data set.

Any query returning the columns of the warehouse's `points` view works (`dataset, run_id, rank,
P, N, L_ft, L_f_hard, L_f_soft, L_f_kl, L_f_data`; forgetting columns a fit does not use may be
absent), e.g. `SELECT * FROM read_csv('points.csv')`. Everything a law cannot be fitted on is
refused here, with one line naming the problem and the fix, before any fitting starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from forgetlab.errors import UserError
from forgetlab.laws.forms import FORGETTING_VARIANTS, LawForm
from forgetlab.shipped import given_or_shipped

DEFAULT_QUERY = Path("queries") / "laws.sql"
MIN_DISTINCT = 3  # a power term c·x^(−α) plus a constant needs 3 distinct x to be determined


def resolve_query_path(path: Optional[Union[str, Path]]) -> Path:
    """The query file: as given (default: the shipped `queries/laws.sql`), else the shipped copy."""
    return given_or_shipped(Path(path) if path is not None else DEFAULT_QUERY, "queries")


def load_points(sql: str, params: Optional[Mapping[str, Any]], db_path: Union[str, Path]):
    """Run the points query and return a pandas DataFrame.

    The one place fits touch SQL. It uses the warehouse's `run_query` (read-only, header
    defaults, one-line errors); with no warehouse file the query runs on an in-memory DuckDB,
    which serves queries that read files (`read_csv`, `read_parquet`).
    """
    import duckdb

    from forgetlab.warehouse.query import run_query

    db_path = Path(db_path)
    if db_path.exists():
        table = run_query(sql, params, db_path)
    else:
        connection = duckdb.connect()
        try:
            table = run_query(sql, params, connection=connection)
        except UserError as error:
            if "points" in error.message and "does not exist" in error.message:
                raise UserError(
                    f"no warehouse at {db_path}: run `forgetlab export` first, or pass --query with a file "
                    "that reads your points (e.g. SELECT * FROM read_csv('points.csv'))"
                ) from None
            raise
        finally:
            connection.close()
    return table.to_pandas()


def query_parameters(sql: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values the query runs with (header defaults, then overrides): recorded."""
    from forgetlab.warehouse.query import parse_query

    return {**parse_query(sql).defaults, **dict(overrides)}


@dataclass(frozen=True, eq=False)
class Points:
    """One data set's points, as arrays (L_ft is None where the fit needs no L_ft)."""

    dataset: str
    variant: str
    run_id: np.ndarray
    rank: np.ndarray
    P: np.ndarray
    N: np.ndarray
    L_ft: Optional[np.ndarray]
    L_f: np.ndarray
    seed: Optional[np.ndarray] = None
    """The run's seed per point (NaN or None where unknown): the bootstrap's unit within a rank."""

    def __len__(self) -> int:
        return len(self.L_f)

    def take(self, index: np.ndarray) -> "Points":
        return Points(
            self.dataset, self.variant, self.run_id[index], self.rank[index], self.P[index], self.N[index],
            None if self.L_ft is None else self.L_ft[index], self.L_f[index],
            None if self.seed is None else self.seed[index],
        )  # fmt: skip

    def targets(self, law: LawForm) -> np.ndarray:
        """The observed targets of `law`, rows in the order of `law.targets`."""
        return np.stack([self.L_ft if t == "L_ft" else self.L_f for t in law.targets]).astype(float)


def forgetting_column(variant: str) -> str:
    if variant not in FORGETTING_VARIANTS:
        raise UserError(f"unknown forgetting variant '{variant}'; choose one of: {', '.join(FORGETTING_VARIANTS)}")
    return f"L_f_{variant}"


def required_columns(law: LawForm, variant: str) -> list[str]:
    columns = ["dataset", "run_id"]
    columns += [c for c in ("P", "N") if c in law.inputs]
    if "L_ft" in law.inputs or "L_ft" in law.targets:
        columns.append("L_ft")
    return columns + [forgetting_column(variant)]


def datasets_of(frame, dataset: Optional[str]) -> list[str]:
    """The data sets to fit: all in the points, or the one asked for (which must be there)."""
    if "dataset" not in frame.columns:
        raise UserError("the query returns no `dataset` column; select it (or a constant: 'mydata' AS dataset)")
    present = sorted(str(d) for d in frame["dataset"].dropna().unique())
    if not present:
        raise UserError("the query returned no points; check its WHERE clause and --param values")
    if dataset is None:
        return present
    if dataset not in present:
        raise UserError(f"no points for data set '{dataset}'; the query returned: {', '.join(present)}")
    return [dataset]


def points_for(frame, law: LawForm, variant: str, dataset: str) -> Points:
    """Check one data set's rows for `law` and return them as arrays; UserError if unusable."""
    import pandas as pd

    columns = required_columns(law, variant)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"the query result lacks {', '.join(missing)} (law {law.name}, variant {variant}); it must return "
            "dataset, run_id, rank, P, N, L_ft and the L_f_<variant> column(s) it fits"
        )
    rows = frame[frame["dataset"].astype(str) == dataset]
    values = rows[columns[2:]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float)).all(axis=1) | rows["run_id"].isna().to_numpy()
    if bad.any():
        worst = values.columns[(~np.isfinite(values.to_numpy(dtype=float))).sum(axis=0).argmax()]
        raise UserError(
            f"data set '{dataset}': {int(bad.sum())} of {len(rows)} points have a missing or non-finite value "
            f"(most in {worst}); filter them in the query, e.g. WHERE {worst} IS NOT NULL AND isfinite({worst})"
        )
    column = columns[-1]

    def numeric(name: str) -> np.ndarray:
        if name not in rows:
            return np.full(len(rows), np.nan)
        return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)

    P, N, rank = numeric("P"), numeric("N"), numeric("rank")
    if not np.isfinite(rank).all():
        rank = P.copy()  # without ranks, runs are grouped by their P for validation
    points = Points(
        dataset=dataset,
        variant=variant,
        run_id=rows["run_id"].astype(str).to_numpy(),
        rank=rank,
        P=P,
        N=N,
        L_ft=numeric("L_ft") if "L_ft" in rows else None,
        L_f=numeric(column),
        seed=numeric("seed"),
    )
    reason = unfittable(law, points, column)
    if reason:
        raise UserError(f"data set '{dataset}': {reason}")
    return points


def unfittable(law: LawForm, points: Points, column: str = "L_f") -> Optional[str]:
    """Why `law` cannot be identified from these points, or None. Used for the full data and for
    every bootstrap replicate and validation fold."""
    n, k = len(points), len(law.params)
    if n <= k:
        return f"{n} points, but law {law.name} has {k} parameters: it needs more than {k} points"
    targets = {"L_f": (column, points.L_f), "L_ft": ("L_ft", points.L_ft)}
    for target in law.targets:
        name, values = targets[target]
        if np.any(values <= 0):
            return f"{name} has values ≤ 0; the fit uses log residuals, so losses must be positive"
        if np.ptp(values) == 0:
            return f"{name} is constant ({values[0]:g}): there is nothing to fit"
    if "L_ft" in law.inputs and np.ptp(points.L_ft) == 0:
        return f"L_ft is constant ({points.L_ft[0]:g}): law {law.name} cannot separate its slope from its intercept"
    for name, values in (("P", points.P), ("N", points.N)):
        if name not in law.inputs:
            continue
        if np.any(values <= 0):
            if name == "N":  # step 0 is the base before any update: a law in ln N cannot take it
                return "N has values ≤ 0 (step 0 is the base, before any update); keep N > 0, e.g. --param min_step=0"
            return f"{name} has values ≤ 0; it must be a positive count"
        distinct = len(np.unique(values))
        if distinct < MIN_DISTINCT:
            fix = "add runs at more ranks, or fit --law linear" if name == "P" else "add evaluation steps"
            single = "a single" if distinct == 1 else f"only {distinct} distinct values of"
            return f"{single} {name} in the points; law {law.name} needs at least {MIN_DISTINCT} to identify its {name} term ({fix})"
    return None


def unfinished_runs(sql: str, db_path: Union[str, Path], dataset: Optional[str] = None) -> int:
    """How many fine-tuning runs the `points` view leaves out because they FAILED (e.g. diverged)
    or were KILLED; 0 when the query does not read the view or there is no warehouse."""
    import re

    from forgetlab.warehouse.query import run_query

    if not Path(db_path).exists() or not re.search(r"\bpoints\b", sql, re.IGNORECASE):
        return 0
    count = (
        "SELECT count(*) AS n FROM runs WHERE coalesce(kind, 'run') = 'run' AND status IN ('FAILED', 'KILLED') "
        "AND lifecycle_stage = 'active'" + (" AND dataset = $dataset" if dataset is not None else "")
    )
    try:
        table = run_query(count, {"dataset": dataset} if dataset is not None else None, db_path)
    except UserError:
        return 0  # not a forgetlab warehouse (no runs table): nothing to report
    return int(table.column("n")[0].as_py())
