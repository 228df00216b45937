"""Benchmark the DuckDB warehouse against MLflow's own client on a synthetic store.

One command: `.venv/bin/python benchmarks/export.py [--runs 200] [--steps 1000]`.

It builds a SQLite tracking store of `runs` runs x `steps` steps x 6 metrics through MLflow's own
API (experiment, runs, params, tags, status, and one real `log_batch` per run), then fills the
bulk of the metric history by writing MLflow's `metrics`/`latest_metrics` tables directly, since
1.2 M points through `log_batch` would take minutes. It then times

  (a) a full `forgetlab export`,
  (b) an incremental export with nothing changed,
  (c) a query over all points,
  (d) the MLflow client way: `search_runs` + `get_metric_history` per run and metric into pandas,
      timed on a subset of runs and scaled linearly (the output says so),

and prints the ratios against the targets (full <= 5 s, no-op <= 1 s, >= 50x faster than (d)).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

METRICS = ["ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree"]
RANKS = [1, 2, 4, 8, 16]


def _values(rank: int, step: int, rng: random.Random) -> dict[str, float]:
    """Curves shaped like the paper's: L_ft falls with N and P, forgetting rises with both."""
    n = step + 1
    p = 14_592 * rank
    l_ft = 2.0 + 3.0 * ((7e3 / p) ** 0.2 + (30 / n) ** 0.5) ** 0.8
    kl = 1.2 * (1 - math.exp(-n / 300)) * (1 + 0.05 * math.log2(rank))
    noise = rng.gauss(0, 0.01)
    return {
        "ft_loss": l_ft + noise,
        "forget_hard": 3.0 + kl + noise,
        "forget_soft": 4.2 + kl + noise,
        "forget_kl": kl,
        "forget_data": 4.3 + 0.5 * kl,
        "forget_agree": max(0.0, 1.0 - 0.5 * kl),
    }


def build_store(folder: Path, runs: int, steps: int, seed: int = 0) -> str:
    """Create `folder/mlflow.db` with `runs` FINISHED runs; return its tracking URI."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("forgetlab", artifact_location=(folder / "artifacts").as_uri())
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    bulk: list[tuple] = []
    latest: list[tuple] = []
    for index in range(runs):
        rank = RANKS[index % len(RANKS)]
        dataset = "kjv" if index % 2 == 0 else "shakespeare"
        run = client.create_run(experiment_id, run_name=f"r{rank}-s{index}", tags={
            "forgetlab.kind": "run", "forgetlab.dataset": dataset, "forgetlab.sweep": "bench",
            "forgetlab.point": f"rank={rank},seed={index}",
        })
        run_id = run.info.run_id
        params = {"lora.rank": rank, "P": 14_592 * rank, "data.name": dataset, "seed": index,
                  "train.lr": 3e-4, "train.steps": steps, "model.name": "tiny-llama",
                  "lora.target_modules": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                  "fingerprint.base": "0123abcd"}
        # Step 0 goes through MLflow's own log_batch, so the store is one MLflow really wrote.
        first = _values(rank, 0, rng)
        client.log_batch(run_id,
                         metrics=[Metric(key, value, now_ms, 0) for key, value in first.items()],
                         params=[Param(key, str(value)) for key, value in params.items()],
                         tags=[RunTag("bench", "1")])
        for step in range(1, steps):
            timestamp = now_ms + step
            for key, value in _values(rank, step, rng).items():
                bulk.append((key, value, timestamp, run_id, step, 0))
        for key in METRICS:
            latest.append((key, bulk[-len(METRICS) + METRICS.index(key)][1], now_ms + steps - 1, steps - 1, 0, run_id))
        client.set_terminated(run_id, "FINISHED")
    with sqlite3.connect(folder / "mlflow.db") as connection:
        connection.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", bulk)
        connection.executemany(
            "UPDATE latest_metrics SET value = ?, timestamp = ?, step = ?, is_nan = ? WHERE key = ? AND run_uuid = ?",
            [(value, ts, step, nan, key, run_id) for key, value, ts, step, nan, run_id in latest])
    return uri


def _timed(label: str, action):
    """Wall and CPU seconds of one call (the machine may be shared: CPU shows what was ours)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {label:<58} {wall:7.2f} s wall  {cpu:7.2f} s CPU")
    return result, wall


def _mlflow_client_way(uri: str, sample_runs: int) -> tuple[float, int, int]:
    """search_runs + get_metric_history per run and metric into pandas, on `sample_runs` runs."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    started = time.perf_counter()
    experiment = client.get_experiment_by_name("forgetlab")
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    search_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rows = []
    for run in runs[:sample_runs]:
        for key in METRICS:
            for metric in client.get_metric_history(run.info.run_id, key):
                rows.append({"run_id": run.info.run_id, "key": key, "step": metric.step, "value": metric.value,
                             "timestamp": metric.timestamp})
    frame = pd.DataFrame(rows)
    history_seconds = time.perf_counter() - started
    return search_seconds + history_seconds * len(runs) / sample_runs, len(runs), len(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sample-runs", type=int, default=10, help="runs timed for the MLflow client way (scaled)")
    parser.add_argument("--store", type=Path, help="folder to keep (and reuse) the synthetic store in")
    args = parser.parse_args()

    from forgetlab.warehouse import export_warehouse, run_query

    with tempfile.TemporaryDirectory(prefix="forgetlab-bench-") as scratch:
        folder = args.store or Path(scratch) / "store"
        points = args.runs * args.steps * len(METRICS)
        if (folder / "mlflow.db").exists():
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            print(f"reusing the store {uri}")
        else:
            print(f"building a store of {args.runs} runs x {args.steps} steps x {len(METRICS)} metrics = {points:,} points ...")
            started = time.perf_counter()
            uri = build_store(folder, args.runs, args.steps)
            print(f"  built in {time.perf_counter() - started:.1f} s ({(folder / 'mlflow.db').stat().st_size / 1e6:.0f} MB)")
        warehouse = Path(scratch) / "forgetlab.duckdb"
        print(f"timings (2 cores? os.cpu_count()={os.cpu_count()}, load average before: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})")

        report, full = _timed("(a) full export", lambda: export_warehouse(uri, warehouse))
        print(f"      {report.summary()}")
        report, noop = _timed("(b) incremental export, nothing changed", lambda: export_warehouse(uri, warehouse))
        assert report.up_to_date, report.summary()
        table, query = _timed("(c) query over all points: SELECT * FROM curves -> Arrow",
                              lambda: run_query("SELECT * FROM curves", {}, warehouse))
        _, aggregate = _timed("    aggregate over all points (metrics GROUP BY run, key)",
                              lambda: run_query("SELECT run_id, key, count(*), avg(value), min(value) FROM metrics "
                                                "GROUP BY ALL", {}, warehouse))
        _, to_pandas = _timed("    SELECT * FROM curves -> pandas",
                              lambda: run_query("SELECT * FROM curves", {}, warehouse).to_pandas())
        (client_seconds, run_count, sampled_points), _ = _timed(
            f"(d) MLflow client, {args.sample_runs} of {args.runs} runs timed",
            lambda: _mlflow_client_way(uri, args.sample_runs))
        print(f"  (d) scaled to all {run_count} runs: {client_seconds:.1f} s "
              f"(search_runs on all runs + get_metric_history x {len(METRICS)} keys per run, measured on "
              f"{args.sample_runs} runs = {sampled_points:,} points, times {run_count / args.sample_runs:g})")

    print("results against the targets:")
    print(f"  full export          {full:6.2f} s   target <= 5 s   {'ok' if full <= 5 else 'MISSED'}")
    print(f"  no-op incremental    {noop:6.2f} s   target <= 1 s   {'ok' if noop <= 1 else 'MISSED'}")
    print(f"  query into pandas    {to_pandas:6.2f} s   vs MLflow client {client_seconds:.1f} s: "
          f"{client_seconds / to_pandas:,.0f}x faster   target >= 50x   "
          f"{'ok' if client_seconds / to_pandas >= 50 else 'MISSED'}")
    print(f"  export + query       {full + to_pandas:6.2f} s   vs MLflow client: "
          f"{client_seconds / (full + to_pandas):,.0f}x faster (from an empty warehouse)")
    print(f"  query into Arrow     {query:6.2f} s ({table.num_rows:,} rows); aggregate {aggregate:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
