"""Read an MLflow tracking *server* over its REST API, in batches.

- Runs, params, tags and each run's latest metrics come from `runs/search`, 1,000 runs a page.
- Histories come from `metrics/get-history-bulk` (the endpoint MLflow's own UI uses for charts):
  up to 100 runs per request for one key, at most 25,000 points per response, sorted by run.
  (`get-history-bulk-interval` is not used: it samples, at most 2,500 points a run.) Requests for
  different keys and groups of runs go out concurrently, at most `CONCURRENT_REQUESTS` at once:
  the server works on one while the answer to another is parsed here.
  A truncated response is detected (it has exactly the cap) and the runs it may have cut short
  are asked again; a single run with more points than the cap, or a server without the bulk
  endpoint, falls back to the paged `metrics/get-history` (one run and key per call, what
  `MlflowClient.get_metric_history` does).

A run's signature here is built from its info, params, tags and the (step, timestamp) of each
latest metric: unlike the SQLite reader, a point back-filled at an *older* step without any newer
point is not seen as a change (use `forgetlab export --full`).

MLflow is imported only here, for its authentication and retry handling.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Optional

from forgetlab.errors import UserError
from forgetlab.warehouse.sources.base import Catalog, ProgressFactory, digest, key_value_digests, metric_schema

if TYPE_CHECKING:
    import pyarrow as pa

SEARCH_PAGE = 1000
BULK_RUNS = 100  # the server's limit on run ids per bulk request
BULK_POINTS = 25_000  # the server's cap on points per bulk response
HISTORY_PAGE = 25_000
CONCURRENT_REQUESTS = 4  # a bound, so one export cannot flood a shared team server


def _scrub(uri: str) -> str:
    from forgetlab.tracking import scrub_secrets

    return scrub_secrets(uri)


class RemoteSource:
    """An MLflow server at an `http(s)://` tracking URI."""

    schema_note = None  # the server's MLflow reads its own schema

    def __init__(self, tracking_uri: str):
        from mlflow.utils.credentials import get_default_host_creds

        self.description = _scrub(tracking_uri)
        self._creds = get_default_host_creds(tracking_uri)
        self._run_keys: dict[str, list[str]] = {}
        self._bulk_available = True
        self._lock = threading.Lock()

    def close(self) -> None:
        pass

    def _call(self, endpoint: str, method: str, **kwargs: Any) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        try:
            response = http_request(self._creds, endpoint, method, max_retries=3, timeout=120, **kwargs)
            verify_rest_response(response, endpoint)
        except MlflowException as error:
            raise UserError(f"MLflow server {self.description}, {endpoint}: {error.message}") from None
        except Exception as error:  # connection refused, DNS, timeouts after retries
            raise UserError(f"cannot reach the MLflow server {self.description}: {error}") from None
        return json.loads(response.text or "{}")  # accepts the NaN literals MLflow's JSON may contain

    def _paged(self, endpoint: str, body: dict[str, Any], field_name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: Optional[str] = None
        while True:
            page = self._call(endpoint, "POST", json={**body, **({"page_token": token} if token else {})})
            items.extend(page.get(field_name, []))
            token = page.get("next_page_token")
            if not token:
                return items

    def read_catalog(self, watermark: str = "") -> Catalog:
        experiments = self._paged(
            "/api/2.0/mlflow/experiments/search", {"max_results": SEARCH_PAGE, "view_type": "ALL"}, "experiments"
        )
        experiment_ids = [e["experiment_id"] for e in experiments]
        runs: list[dict[str, Any]] = []
        for start in range(0, len(experiment_ids), 100):
            runs.extend(
                self._paged(
                    "/api/2.0/mlflow/runs/search",
                    {
                        "experiment_ids": experiment_ids[start : start + 100],
                        "max_results": SEARCH_PAGE,
                        "run_view_type": "ALL",
                    },
                    "runs",
                )
            )

        experiment_rows = [
            (
                str(e["experiment_id"]),
                e.get("name"),
                e.get("artifact_location"),
                e.get("lifecycle_stage"),
                _int(e.get("creation_time")),
                _int(e.get("last_update_time")),
            )
            for e in experiments
        ]
        run_rows, param_rows, tag_rows = [], [], []
        latest: dict[str, list[tuple[str, int, int]]] = {}
        for run in runs:
            info, data = run.get("info", {}), run.get("data", {})
            run_id = info.get("run_id") or info.get("run_uuid")
            run_rows.append(
                (
                    run_id,
                    info.get("run_name"),
                    str(info.get("experiment_id")),
                    info.get("status"),
                    info.get("lifecycle_stage"),
                    _int(info.get("start_time")),
                    _int(info.get("end_time")),
                    info.get("user_id"),
                    info.get("artifact_uri"),
                )
            )
            param_rows.extend((run_id, p["key"], p.get("value")) for p in data.get("params", []))
            tag_rows.extend((run_id, t["key"], t.get("value")) for t in data.get("tags", []))
            latest[run_id] = sorted(
                (m["key"], _int(m.get("step")) or 0, _int(m.get("timestamp")) or 0) for m in data.get("metrics", [])
            )
        run_rows.sort(key=lambda row: (row[5] or 0, row[0]))
        params = sorted(param_rows, key=lambda r: (r[0], r[1]))
        tags = sorted(tag_rows, key=lambda r: (r[0], r[1]))
        param_digests, tag_digests = key_value_digests(params), key_value_digests(tags)
        self._run_keys = {run_id: [key for key, _, _ in keys] for run_id, keys in latest.items()}
        signatures = {
            row[0]: digest((row[1:], latest.get(row[0]), param_digests.get(row[0]), tag_digests.get(row[0])))
            for row in run_rows
        }
        return Catalog(
            experiments=experiment_rows,
            runs=run_rows,
            params=params,
            tags=tags,
            signatures=signatures,
        )

    def read_metrics(self, run_ids: list[str], progress: Optional[ProgressFactory] = None) -> "pa.Table":
        import pyarrow as pa

        by_key: dict[str, list[str]] = {}
        for run_id in run_ids:
            for key in self._run_keys.get(run_id, []):
                by_key.setdefault(key, []).append(run_id)
        tasks = [
            (key, sorted(runs)[start : start + BULK_RUNS])
            for key, runs in sorted(by_key.items())
            for start in range(0, len(runs), BULK_RUNS)
        ]
        total = sum(len(runs) for _, runs in tasks)
        advance = progress(f"reading {total:,} metric histories", total) if progress and total else None
        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
            parts = list(pool.map(lambda task: self._histories(*task, advance), tasks))
        rows = [row for part in parts for row in part]  # in task order: `seq` is deterministic
        seq = list(range(len(rows)))
        columns = list(zip(*rows)) if rows else [[] for _ in range(6)]
        schema = metric_schema()
        return pa.Table.from_arrays(
            [pa.array(list(values), field.type) for values, field in zip([*columns, seq], schema)],
            schema=schema,
        )

    def _histories(self, key: str, run_ids: list[str], advance) -> list[tuple]:
        """The complete histories of `key` for these runs (at most BULK_RUNS), a request at a time."""
        rows: list[tuple] = []
        pending = run_ids
        while pending:
            complete = self._bulk(pending, key, rows)
            if complete == 0:  # one run alone fills a response, or no bulk endpoint
                self._history(pending[0], key, rows)
                complete = 1
            pending = pending[complete:]
            if advance is not None:
                with self._lock:
                    advance(complete)
        return rows

    def _bulk(self, run_ids: list[str], key: str, rows: list[tuple]) -> int:
        """Append the complete histories of a prefix of `run_ids`; return how many are complete."""
        if not self._bulk_available:
            return 0
        try:
            answer = self._call(
                "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                "GET",
                params={"run_id": run_ids, "metric_key": key, "max_results": BULK_POINTS},
            )
        except UserError:
            self._bulk_available = False  # not an MLflow OSS server (or an old one): per-run calls
            return 0
        metrics = answer.get("metrics", [])
        if len(metrics) < BULK_POINTS:
            complete_runs = set(run_ids)
            count = len(run_ids)
        else:
            cut = metrics[-1]["run_id"]  # sorted by run id: every run before the last one is whole
            complete_runs = {run_id for run_id in run_ids if run_id < cut}
            count = len(complete_runs)
        for metric in metrics:
            if metric["run_id"] in complete_runs:
                rows.append(_row(metric["run_id"], metric))
        return count

    def _history(self, run_id: str, key: str, rows: list[tuple]) -> None:
        token: Optional[str] = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
            if token:
                params["page_token"] = token
            page = self._call("/api/2.0/mlflow/metrics/get-history", "GET", params=params)
            rows.extend(_row(run_id, metric) for metric in page.get("metrics", []))
            token = page.get("next_page_token")
            if not token:
                return


def _row(run_id: str, metric: dict[str, Any]) -> tuple:
    value = float(metric.get("value", 0.0))  # "NaN"/"Infinity" strings from protobuf JSON too
    is_nan = math.isnan(value)
    return (
        run_id,
        metric["key"],
        _int(metric.get("step")) or 0,
        0.0 if is_nan else value,
        _int(metric.get("timestamp")) or 0,
        is_nan,
    )


def _int(value: Any) -> Optional[int]:
    return None if value is None else int(value)
