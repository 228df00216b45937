"""Where fits are kept: one MLflow run per fit, and a row in the warehouse's `fits` table.

MLflow run (experiment `forgetlab-fits`, tag `forgetlab.kind=fit`): params = the fit spec
(flattened), metrics = the fitted parameters with their bootstrap intervals (`fit/<name>`,
`.low`, `.high`), goodness, held-out error and bootstrap counts, artifacts = `fit.json`,
`query.sql` and `figures/*.png`. Its run id is the fit id. A fit of one sweep's runs is listed on
the sweep's run (`link_fit_to_sweep`).

DuckDB `fits` table (in the warehouse file, opened read-write only for the insert): one row per
fit, so fits can be compared in SQL:

    SELECT dataset, law, variant, status, identified, stats->>'$.L_f.r2' AS r2 FROM fits;

`result` holds the full JSON (including the bootstrap draws `forgetlab predict` uses).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Union

from forgetlab.errors import UserError
from forgetlab.laws.result import FitResult
from forgetlab.utils.mappings import flatten

EXPERIMENT = "forgetlab-fits"

FITS_DDL = """
CREATE TABLE IF NOT EXISTS fits (
    fit_id VARCHAR,
    created TIMESTAMPTZ,
    dataset VARCHAR,
    law VARCHAR,
    variant VARCHAR,
    status VARCHAR,
    identified BOOLEAN,
    params JSON,
    intervals JSON,
    stats JSON,
    validation JSON,
    identifiability JSON,
    n_points INTEGER,
    n_runs INTEGER,
    huber_delta DOUBLE,
    bootstrap_b INTEGER,
    bootstrap_seed INTEGER,
    query VARCHAR,
    query_params JSON,
    result JSON
)
"""
FITS_COLUMNS = (
    "fit_id", "created", "dataset", "law", "variant", "status", "identified", "params", "intervals", "stats",
    "validation", "identifiability", "n_points", "n_runs", "huber_delta", "bootstrap_b", "bootstrap_seed",
    "query", "query_params", "result",
)  # fmt: skip


def fit_metrics(result: FitResult) -> dict[str, float]:
    """The numbers worth comparing across fits in the MLflow UI.

    Each fitted parameter is `fit/<name>`, its bootstrap interval `fit/<name>.low` and `.high`
    (the UI charts them in a section "fit" and shows them as columns, fits side by side).
    """
    metrics: dict[str, Any] = {}
    for name, value in result.params.items():
        metrics[f"fit/{name}"] = value
        low, high = (list(result.intervals.get(name) or []) + [None, None])[:2]
        metrics[f"fit/{name}.low"], metrics[f"fit/{name}.high"] = low, high
    for target, stats in result.stats.items():
        if isinstance(stats, dict):
            for key in ("r2", "rmse", "mae", "aic", "bic"):
                metrics[f"{target}.{key}"] = stats.get(key)
    metrics["objective"] = result.stats.get("objective")
    for split in ("leave_one_rank_out", "small_to_largest", "later_steps"):
        for target, errors in result.validation.get(split, {}).items():
            if isinstance(errors, dict) and "rmse" in errors:
                metrics[f"{split}.{target}.rmse"] = errors["rmse"]
                metrics[f"{split}.{target}.mae"] = errors["mae"]
    metrics["bootstrap.succeeded"] = result.bootstrap["succeeded"]
    metrics["bootstrap.failed"] = result.bootstrap["failed"]
    metrics["identified"] = float(bool(result.identifiability.get("identified")))
    metrics["condition_number"] = result.identifiability.get("condition_number")
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v and abs(v) != float("inf")
    }


def log_fit_run(
    result: FitResult, figures: list[Path], tracking_uri: Optional[str], group: str, points=None
) -> FitResult:
    """Create the fit's MLflow run and return the result carrying its id (the fit id).

    With the fitted `points`, the run is linked to them (tracking/fits.py): source experiments,
    sweep parent (and nested under it), a digest of the points.
    """
    from forgetlab.tracking import RunTracker, names, scrub_secrets
    from forgetlab.tracking.fits import FitRunContext, fit_run_context, link_fit_to_sweep

    tracker = RunTracker(tracking_uri, EXPERIMENT)
    links = fit_run_context(tracker.client, points.run_id, vars(points)) if points is not None else FitRunContext()
    # A fit of one group of `forgetlab fit --by` says which group in its name and tags.
    by, group_label = result.extra.get("by"), result.extra.get("group")
    grouped = {names.FIT_BY: str(by), names.FIT_BY_VALUE: str(group_label)} if by is not None else {}
    run_name = f"{result.law}-{result.dataset}-{result.variant}" + (f"-{by}={group_label}" if by is not None else "")
    run_id = tracker.start(
        run_name,
        tags={
            **grouped,
            **links.tags,
            names.KIND: "fit",
            names.DATASET: result.dataset,
            names.LAW: result.law,
            names.VARIANT: result.variant,
            names.FIT_STATUS: result.status,
            names.IDENTIFIED: str(bool(result.identifiability.get("identified"))).lower(),
            names.FIT_GROUP: group,
        },
    )
    result = replace(result, fit_id=run_id)
    try:
        if links.parent_run_id:
            link_fit_to_sweep(tracker.client, links.parent_run_id, run_id, run_name)
        spec = dict(result.spec)
        query = spec.pop("query", {}) or {}
        params = flatten(spec, join_lists=False)
        params.update(links.params)
        params.update(
            {
                "query.path": query.get("path"),
                **{f"query.params.{k}": v for k, v in (query.get("params") or {}).items()},
            }
        )
        tracker.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items()})
        tracker.log_metrics(fit_metrics(result), step=0)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "fit.json").write_text(scrub_secrets(result.to_json()))
            tracker.log_file(Path(folder) / "fit.json")
            if query.get("sql"):
                (Path(folder) / "query.sql").write_text(scrub_secrets(query["sql"]))
                tracker.log_file(Path(folder) / "query.sql")
        for figure in figures:
            tracker.log_file(figure, "figures")
        tracker.finish("FINISHED")
    except BaseException:
        tracker.finish("FAILED", failure="logging the fit failed")
        raise
    return result


def artifact_folder(fit_id: str, tracking_uri: Optional[str]) -> str:
    """Where the fit's artifacts live (for the terminal summary)."""
    from forgetlab import tracking

    return tracking.client(tracking_uri).get_run(fit_id).info.artifact_uri


def write_fit_rows(results: list[FitResult], db_path: Union[str, Path]) -> None:
    """Append one `fits` row per result; the only moment fits open the warehouse read-write."""
    import duckdb

    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = duckdb.connect(str(db_path))
    except duckdb.Error as error:
        raise UserError(
            f"cannot open the warehouse {db_path} to record the fit: {str(error).splitlines()[0]}"
        ) from None
    try:
        connection.execute(FITS_DDL)
        placeholders = ", ".join("?" for _ in FITS_COLUMNS)
        connection.executemany(
            f"INSERT INTO fits ({', '.join(FITS_COLUMNS)}) VALUES ({placeholders})", [_row(r) for r in results]
        )
    finally:
        connection.close()


def _row(result: FitResult) -> list[Any]:
    data = result.to_dict()
    query = data["spec"].get("query") or {}
    dump = lambda value: json.dumps(value, allow_nan=False)  # noqa: E731
    row = [
        data["fit_id"], data["created"], data["dataset"], data["law"], data["variant"], data["status"],
        bool(data["identifiability"].get("identified")), dump(data["params"]), dump(data["intervals"]),
        dump(data["stats"]), dump(data["validation"]), dump(data["identifiability"]), data["data"]["n_points"],
        data["data"]["n_runs"], data["spec"]["huber_delta"], data["bootstrap"]["B"], data["bootstrap"]["seed"],
        query.get("sql"), dump(query.get("params") or {}), dump(data),
    ]  # fmt: skip
    from forgetlab.tracking import scrub_secrets

    return [scrub_secrets(value) if isinstance(value, str) else value for value in row]


def load_fit(fit_id: str, dataset: Optional[str], db_path: Union[str, Path], tracking_uri: Optional[str]) -> FitResult:
    """A stored fit, from the `fits` table, else from the MLflow run's `fit.json`.

    `fit_id` is a fit id, the first characters of one (the comparison table of `forgetlab fit`
    shortens them, `cc68b6a42ef64…`), or a law's name: the latest fit of that law (of `dataset`).
    """
    from forgetlab.laws.forms import law_names

    fit_id = fit_id.strip().rstrip("…").rstrip(".")
    if fit_id in law_names():
        return _latest_of_law(fit_id, dataset, Path(db_path))
    found = _from_table(fit_id, dataset, Path(db_path))
    if found is None:
        found = _from_mlflow(fit_id, tracking_uri)
    if found is None:
        raise UserError(
            f"no fit '{fit_id}' in the fits table of {db_path} or the tracking store; pass a fit id (or at least "
            f"its first {MIN_PREFIX} characters) or a law's name for its latest fit; list fits with: forgetlab query -e 'SELECT fit_id, dataset, law FROM fits'"
        )
    if dataset is not None and found.dataset != dataset:
        raise UserError(f"fit '{fit_id}' is of data set '{found.dataset}', not '{dataset}'")
    return found


MIN_PREFIX = 6  # characters of a fit id that may stand for it


def _fits_rows(db_path: Path, sql: str, parameters: list) -> Optional[list[tuple]]:
    """Rows of a query over the `fits` table, or None when there is no such table."""
    import duckdb

    if not db_path.exists():
        return None
    try:
        connection = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return None
    try:
        tables = {row[0] for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "fits" not in tables:
            return None
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def _from_table(fit_id: str, dataset: Optional[str], db_path: Path) -> Optional[FitResult]:
    rows = _fits_rows(db_path, "SELECT fit_id, result FROM fits WHERE fit_id = ? ORDER BY created DESC", [fit_id])
    if not rows and len(fit_id) >= MIN_PREFIX:
        rows = _fits_rows(
            db_path, "SELECT fit_id, result FROM fits WHERE starts_with(fit_id, ?) ORDER BY created DESC", [fit_id]
        )
    if not rows:
        return None
    ids = sorted({row[0] for row in rows})
    if len(ids) > 1:
        raise UserError(
            f"fit id '{fit_id}' is the start of {len(ids)} fits ({', '.join(ids[:4])}{', …' if len(ids) > 4 else ''}); give more of it"
        )
    return FitResult.from_dict(json.loads(rows[0][1]))


def _latest_of_law(law: str, dataset: Optional[str], db_path: Path) -> FitResult:
    """The latest fit of `law` (of `dataset`), refusing to choose between data sets."""
    rows = _fits_rows(
        db_path, "SELECT dataset, created, fit_id, result FROM fits WHERE law = ? AND (? IS NULL OR dataset = ?) ORDER BY created DESC",
        [law, dataset, dataset],
    )  # fmt: skip
    where = f" of data set '{dataset}'" if dataset is not None else ""
    if not rows:
        raise UserError(
            f"no fit of law {law}{where} in the fits table of {db_path}; fit one first: forgetlab fit --law {law}"
        )
    datasets = sorted({row[0] for row in rows})
    if len(datasets) > 1:
        raise UserError(
            f"law {law} was fitted to data sets {', '.join(datasets)}: pass --dataset NAME (or --fit FIT_ID)"
        )
    latest = sorted(row[2] for row in rows if row[1] == rows[0][1])
    if len(latest) > 1:  # `fit --by`: one fit per group, recorded together
        raise UserError(
            f"the latest fits of law {law}{where} are {len(latest)} recorded together ({', '.join(latest)}): pass --fit FIT_ID"
        )
    return FitResult.from_dict(json.loads(rows[0][3]))


def _from_mlflow(fit_id: str, tracking_uri: Optional[str]) -> Optional[FitResult]:
    from forgetlab.locations import resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        return None
    from mlflow.exceptions import MlflowException

    from forgetlab import tracking

    try:
        local = tracking.client(uri).download_artifacts(fit_id, "fit.json")
    except (MlflowException, OSError):
        return None
    return FitResult.from_dict(json.loads(Path(local).read_text()))
