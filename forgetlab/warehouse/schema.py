"""The warehouse's tables and views, as SQL generated from a few Python constants.

The typed `runs` columns and the `curves` pivot are data (`RUN_COLUMNS`, `CURVE_METRICS`) so that
adding a config field is one line here, adding a metric one line in `forgetlab/tracking/names.py`,
and `docs/warehouse.md` can be checked against the same lists. Names come from `docs/tracking-contract.md`.

Timestamps are MLflow's epoch milliseconds turned into DuckDB `TIMESTAMP`s (UTC, no zone).
"""

from __future__ import annotations

from dataclasses import dataclass

import forgetlab.tracking.names as names

# One column per metric in the `curves` view and three per metric in `final` (torch-free names).
from forgetlab.tracking.names import CURVE_METRICS

# Bumped whenever a table changes shape; an export that finds another version rebuilds from scratch
# (tables it does not own, such as `fits`, are carried over).
SCHEMA_VERSION = "1"

# Tables the exporter owns and rewrites; everything else in the file (e.g. `fits`) is left alone.
OWNED_TABLES: tuple[str, ...] = (
    "experiments",
    "runs",
    "params",
    "tags",
    "metrics",
    "_export_state",
    "_export_meta",
    "_export_log",
)
VIEWS: tuple[str, ...] = ("curves", "final", "points")


@dataclass(frozen=True)
class RunColumn:
    """A typed `runs` column lifted from a param or tag (first source present wins)."""

    name: str
    sql_type: str
    sources: tuple[tuple[str, str], ...]  # ("param" | "tag", key)
    doc: str


RUN_COLUMNS: tuple[RunColumn, ...] = (
    RunColumn("kind", "VARCHAR", (("tag", names.KIND),), "`run`, `sweep` or `fit`"),
    RunColumn("rank", "INTEGER", (("param", "lora.rank"),), "LoRA rank r"),
    RunColumn("P", "BIGINT", (("param", "P"),), "number of trainable LoRA parameters"),
    RunColumn("dataset", "VARCHAR", (("tag", names.DATASET), ("param", "data.name")), "fine-tuning data set label"),
    RunColumn("seed", "INTEGER", (("param", "seed"),), "random seed"),
    RunColumn("lr", "DOUBLE", (("param", "train.lr"),), "peak learning rate (config)"),
    RunColumn("steps", "INTEGER", (("param", "train.steps"),), "planned number of optimizer updates"),
    RunColumn("model", "VARCHAR", (("param", "model.name"),), "base model name"),
    RunColumn("context_length", "INTEGER", (("param", "train.context_length"),), "tokens per packed sequence"),
    RunColumn("target_modules", "VARCHAR", (("param", "lora.target_modules"),), "comma-joined LoRA target modules"),
    RunColumn(
        "parent_run_id", "VARCHAR", (("tag", names.MLFLOW_PARENT_RUN_ID),), "the sweep's parent run, for a sweep point"
    ),
    RunColumn("sweep", "VARCHAR", (("tag", names.SWEEP),), "sweep name"),
    RunColumn("point", "VARCHAR", (("tag", names.POINT),), "the sweep point's key"),
    RunColumn("base_fingerprint", "VARCHAR", (("param", "fingerprint.base"),), "fingerprint of the base model"),
    RunColumn("failure", "VARCHAR", (("tag", names.FAILURE),), "why the run FAILED"),
    RunColumn(
        "replay", "DOUBLE", (("param", "mitigation.replay"),), "replay share p (NULL: a run from before mitigations)"
    ),
    RunColumn("kl_to_base", "DOUBLE", (("param", "mitigation.kl_to_base"),), "weight λ of the KL-to-base penalty"),
    RunColumn("l2_to_base", "DOUBLE", (("param", "mitigation.l2_to_base"),), "weight μ of the L2-to-base penalty"),
)

TABLES_DDL = """
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id VARCHAR, name VARCHAR, artifact_location VARCHAR, lifecycle_stage VARCHAR,
    creation_time TIMESTAMP, last_update_time TIMESTAMP);
CREATE TABLE IF NOT EXISTS params (run_id VARCHAR, key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS tags (run_id VARCHAR, key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, key VARCHAR, step BIGINT, value DOUBLE, timestamp TIMESTAMP, is_nan BOOLEAN);
CREATE TABLE IF NOT EXISTS _export_state (
    run_id VARCHAR, signature VARCHAR, points BIGINT, duplicates BIGINT, nan_points BIGINT,
    exported_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS _export_meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS _export_log (
    exported_at TIMESTAMP, source VARCHAR, runs BIGINT, runs_new BIGINT, runs_changed BIGINT,
    runs_removed BIGINT, points_read BIGINT, points_written BIGINT, duplicates_dropped BIGINT,
    nan_points BIGINT, skipped BIGINT, seconds DOUBLE);
"""


def _lift(column: RunColumn) -> str:
    values = [f"{kind}s.value_of['{key}']" for kind, key in column.sources]
    expression = values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"
    if column.sql_type == "VARCHAR":
        return f"{expression} AS {column.name}"
    return f"TRY_CAST({expression} AS {column.sql_type}) AS {column.name}"


def runs_select(source_runs: str, source_params: str, source_tags: str) -> str:
    """SELECT building `runs` from the raw run rows plus params/tags (each as a key->value MAP)."""
    lifted = ",\n    ".join(_lift(column) for column in RUN_COLUMNS)
    return f"""
SELECT r.run_id, r.name, r.experiment_id, e.name AS experiment, r.status, r.lifecycle_stage,
    r.start_time::TIMESTAMP AS start_time, r.end_time::TIMESTAMP AS end_time, r.user_id, r.artifact_uri,
    {lifted}
FROM {source_runs} AS r
LEFT JOIN experiments AS e USING (experiment_id)
LEFT JOIN (SELECT run_id, map_from_entries(list({{'k': key, 'v': value}})) AS value_of
           FROM {source_params} GROUP BY run_id) AS params USING (run_id)
LEFT JOIN (SELECT run_id, map_from_entries(list({{'k': key, 'v': value}})) AS value_of
           FROM {source_tags} GROUP BY run_id) AS tags USING (run_id)
ORDER BY r.start_time, r.run_id
"""


def _curves_view() -> str:
    columns = ",\n    ".join(f"max(value) FILTER (WHERE key = '{m}') AS {m}" for m in CURVE_METRICS)
    keys = ", ".join(f"'{m}'" for m in CURVE_METRICS)
    return f"""
CREATE OR REPLACE VIEW curves AS
SELECT run_id, step,
    {columns}
FROM metrics
WHERE key IN ({keys})
GROUP BY run_id, step
"""


def _final_view() -> str:
    parts = []
    for m in CURVE_METRICS:
        parts.append(f"arg_max_null(m.value, m.step) FILTER (WHERE m.key = '{m}') AS {m}_last")
        parts.append(f"min(m.value) FILTER (WHERE m.key = '{m}') AS {m}_min")
        parts.append(f"max(m.value) FILTER (WHERE m.key = '{m}' AND m.step = l.last_step) AS {m}_at_last_step")
    columns = ",\n    ".join(parts)
    return f"""
CREATE OR REPLACE VIEW final AS
WITH l AS (SELECT run_id, max(step) AS last_step FROM metrics GROUP BY run_id)
SELECT m.run_id, any_value(l.last_step) AS last_step,
    {columns}
FROM metrics AS m JOIN l USING (run_id)
GROUP BY m.run_id
"""


# The law fits' input. A change here changes every fit: the first ten columns are the fits'
# contract; the mitigation columns after them (0 for runs from before mitigations existed) are
# what `forgetlab fit --by` groups on; `seed` is the bootstrap's unit within a rank; the last
# five say which runs may share a law (a fit refuses points that mix their values).
POINTS_VIEW = """
CREATE OR REPLACE VIEW points AS
SELECT r.dataset, c.run_id, r.rank, r.P, c.step AS N,
    c.ft_loss AS L_ft, c.forget_hard AS L_f_hard, c.forget_soft AS L_f_soft,
    c.forget_kl AS L_f_kl, c.forget_data AS L_f_data,
    coalesce(r.replay, 0) AS replay, coalesce(r.kl_to_base, 0) AS kl_to_base, coalesce(r.l2_to_base, 0) AS l2_to_base,
    r.seed, r.model, r.base_fingerprint, r.context_length, r.lr, r.steps
FROM curves AS c JOIN runs AS r USING (run_id)
WHERE r.status = 'FINISHED' AND r.lifecycle_stage = 'active'
  AND coalesce(r.kind, 'run') = 'run' AND c.ft_loss IS NOT NULL
"""

POINTS_COLUMNS: tuple[str, ...] = (
    "dataset",
    "run_id",
    "rank",
    "P",
    "N",
    "L_ft",
    "L_f_hard",
    "L_f_soft",
    "L_f_kl",
    "L_f_data",
    "replay",
    "kl_to_base",
    "l2_to_base",
    "seed",
    "model",
    "base_fingerprint",
    "context_length",
    "lr",
    "steps",
)


def views_ddl() -> list[str]:
    """Views are recreated on every export, so a new forgetlab version's definitions take effect."""
    return [_curves_view(), _final_view(), POINTS_VIEW]
