"""The DuckDB warehouse against stores MLflow itself wrote: export, incremental, atomic, query, CLI.

Stores are built with `MlflowClient` and the contract's names (docs/tracking-contract.md). One
store is built per module and copied per test, since creating an MLflow SQLite store costs
seconds of migrations.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from mlflow_server import mlflow_server

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from forgetlab.warehouse import writer  # noqa: E402
from forgetlab.warehouse.export import export_warehouse  # noqa: E402
from forgetlab.warehouse.query import run_query  # noqa: E402
from forgetlab.warehouse.schema import POINTS_COLUMNS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEYS = ["ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree", "lr"]
T0 = 1_700_000_000_000  # ms; every point gets a distinct, increasing timestamp


def _client(db: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{db}")


def _log_curve(client, run_id: str, rank: int, steps: list[int], offset: int = 0) -> None:
    from mlflow.entities import Metric

    metrics = []
    for step in steps:
        kl = 0.01 * step * (1 + rank / 10)
        values = {
            "ft_loss": 3.0 - 0.02 * step - 0.01 * rank,
            "forget_hard": 2.0 + kl,
            "forget_soft": 3.0 + kl,
            "forget_kl": kl,
            "forget_data": 4.0 + kl / 2,
            "forget_agree": 1.0 - kl / 4,
            "lr": 3e-4,
        }
        if step > 0:
            values["train_loss"] = 3.1 - 0.02 * step
        metrics += [Metric(key, value, T0 + offset + step * 1000, step) for key, value in values.items()]
    client.log_batch(run_id, metrics=metrics)


def _new_run(
    client, experiment_id: str, rank: int, name: str, tags: dict | None = None, params: dict | None = None
) -> str:
    from mlflow.entities import Param

    run = client.create_run(
        experiment_id, run_name=name, tags={"forgetlab.kind": "run", "forgetlab.dataset": "kjv", **(tags or {})}
    )
    params = {
        "lora.rank": rank,
        "P": 14_592 * rank,
        "data.name": "kjv",
        "seed": 0,
        "train.lr": "3e-4",
        "train.steps": 40,
        "model.name": "embedded",
        "lora.target_modules": "q_proj,v_proj",
        "fingerprint.base": "abc123",
        **(params or {}),
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def build_store(client, artifact_location: str | None = None, experiment: str = "forgetlab") -> dict[str, str]:
    """Finished runs of ranks 1/2/4 in a sweep, a duplicate point, a NaN, a failed and a deleted run.

    `client` is an MlflowClient on any store (test_team_store.py builds the same runs on a server).
    """
    from mlflow.entities import Metric

    experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
    sweep = client.create_run(
        experiment_id, run_name="sweep", tags={"forgetlab.kind": "sweep", "forgetlab.sweep": "s1"}
    )
    ids: dict[str, str] = {"sweep": sweep.info.run_id}
    for rank in (1, 2, 4):
        run_id = _new_run(
            client,
            experiment_id,
            rank,
            f"rank{rank}",
            {"mlflow.parentRunId": sweep.info.run_id, "forgetlab.sweep": "s1", "forgetlab.point": f"rank={rank}"},
        )
        _log_curve(client, run_id, rank, [0, 10, 20, 30, 40])
        ids[f"rank{rank}"] = run_id
    # A resumed run re-logs step 20: the later value must win, and the drop must be counted.
    client.log_batch(ids["rank2"], metrics=[Metric("ft_loss", 9.5, T0 + 10_000_000, 20)])
    # A diverged evaluation: NaN must become NULL with is_nan, never a 0.
    client.log_batch(ids["rank4"], metrics=[Metric("forget_kl", float("nan"), T0 + 10_000_001, 50)])
    for key in ("rank1", "rank2", "rank4"):
        client.set_terminated(ids[key], "FINISHED")
    failed = _new_run(client, experiment_id, 8, "rank8", {"forgetlab.failure": "loss became nan at step 11"})
    _log_curve(client, failed, 8, [0, 10])
    client.set_terminated(failed, "FAILED")
    ids["failed"] = failed
    deleted = _new_run(client, experiment_id, 16, "rank16")
    _log_curve(client, deleted, 16, [0, 10])
    client.set_terminated(deleted, "FINISHED")
    client.delete_run(deleted)
    ids["deleted"] = deleted
    client.set_terminated(sweep.info.run_id, "FINISHED")
    ids["experiment"] = experiment_id
    return ids


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("store-template")
    db = folder / "mlflow.db"
    ids = build_store(_client(db), (folder / "artifacts").as_uri())
    return db, ids


@pytest.fixture
def store(template, tmp_path) -> tuple[str, Path, dict[str, str]]:
    """A private copy of the template store: (tracking URI, warehouse path, run ids)."""
    source, ids = template
    folder = tmp_path / "mlruns"
    folder.mkdir()
    shutil.copyfile(source, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}", folder / "forgetlab.duckdb", ids


def _rows(db: Path, sql: str) -> list[tuple]:
    connection = duckdb.connect(str(db), read_only=True)
    try:
        return connection.sql(sql).fetchall()
    finally:
        connection.close()


def _sqlite_count(uri: str, sql: str) -> int:
    import sqlite3

    connection = sqlite3.connect(uri[len("sqlite:///") :])
    try:
        return connection.execute(sql).fetchone()[0]
    finally:
        connection.close()


# ---------------------------------------------------------------- export


def test_every_point_exported_once_and_matches_mlflow(store):
    uri, db, ids = store
    report = export_warehouse(uri, db)
    raw = _sqlite_count(uri, "SELECT count(*) FROM metrics")
    distinct = _sqlite_count(uri, "SELECT count(*) FROM (SELECT DISTINCT run_uuid, key, step FROM metrics)")
    assert report.points_read == raw
    assert report.points_written == distinct == _rows(db, "SELECT count(*) FROM metrics")[0][0]
    assert _rows(
        db, "SELECT count(*) FROM (SELECT run_id, key, step FROM metrics GROUP BY ALL HAVING count(*) > 1)"
    ) == [(0,)]

    client = _client(Path(uri[len("sqlite:///") :]))
    for name in ("rank1", "rank2", "rank4", "failed", "deleted"):
        run_id = ids[name]
        for key in [*KEYS, "train_loss"]:
            latest: dict[int, tuple[int, float]] = {}
            for metric in client.get_metric_history(run_id, key):
                if metric.step not in latest or metric.timestamp >= latest[metric.step][0]:
                    latest[metric.step] = (metric.timestamp, metric.value)
            exported = _rows(
                db,
                f"SELECT step, value, epoch_ms(timestamp), is_nan FROM metrics "
                f"WHERE run_id = '{run_id}' AND key = '{key}' ORDER BY step",
            )
            assert [step for step, *_ in exported] == sorted(latest)
            for step, value, timestamp, is_nan in exported:
                expected_time, expected = latest[step]
                assert timestamp == expected_time
                assert is_nan == math.isnan(expected)
                assert (value is None) if is_nan else (value == expected)


def _add_rows_of_no_run(uri: str, count: int, first_step: int = 0) -> None:
    """Metric rows naming a run the store does not have (a half-deleted run, a hand-edited store)."""
    import sqlite3

    connection = sqlite3.connect(uri[len("sqlite:///") :])
    connection.executemany(
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
        [("ft_loss", 1.0, T0 + step, "f" * 32, step) for step in range(first_step, first_step + count)],
    )
    connection.commit()
    connection.close()


def _warehouse_contents(db: Path) -> tuple:
    return (
        _rows(db, "SELECT * FROM metrics ORDER BY run_id, key, step"),
        _rows(db, "SELECT run_id, signature, points, duplicates, nan_points FROM _export_state ORDER BY run_id"),
        _rows(db, "SELECT * FROM runs ORDER BY run_id"),
    )


def test_both_sqlite_read_paths_write_the_same_warehouse_and_count_rows_of_no_run_once(store, tmp_path):
    # MLflow 3.11+ stores have a (run_uuid, key, step) index, read curve by curve; older stores
    # are scanned with their run ids and keys. Same rows, same counts, from either.
    from forgetlab.warehouse.sources.sqlite import SqliteSource

    uri, db, ids = store
    _add_rows_of_no_run(uri, 3)
    old_store = tmp_path / "old" / "mlflow.db"
    old_store.parent.mkdir()
    shutil.copyfile(uri[len("sqlite:///") :], old_store)
    import sqlite3

    connection = sqlite3.connect(old_store)
    connection.execute("DROP INDEX index_metrics_run_uuid_key_step")
    connection.commit()
    connection.close()
    old_uri, old_db = f"sqlite:///{old_store}", old_store.parent / "forgetlab.duckdb"
    paths = [SqliteSource(Path(u[len("sqlite:///") :])) for u in (uri, old_uri)]
    assert [(bool(p._curve_index), bool(p._run_index)) for p in paths] == [(True, True), (False, True)]
    for path in paths:
        path.close()

    reports = [export_warehouse(uri, db), export_warehouse(old_uri, old_db)]
    for report in reports:
        assert (report.points_written, report.duplicates_dropped, report.nan_points, report.skipped) == (
            reports[0].points_written,
            1,
            1,
            3,
        )
        assert report.summary().count("3 metric rows belong to no run") == 1
    assert _warehouse_contents(db) == _warehouse_contents(old_db)

    # Incremental: new points of one run and more rows of no run, above the watermark.
    for u in (uri, old_uri):
        _log_curve(_client(Path(u[len("sqlite:///") :])), ids["rank1"], 1, [50], offset=5_000_000)
        _add_rows_of_no_run(u, 2, first_step=100)
    reports = [export_warehouse(uri, db), export_warehouse(old_uri, old_db)]
    for report in reports:
        assert (report.runs_changed, report.skipped) == (1, 2)
    assert _warehouse_contents(db) == _warehouse_contents(old_db)
    assert _rows(db, f"SELECT max(step) FROM metrics WHERE run_id = '{ids['rank1']}'") == [(50,)]


def test_duplicates_keep_latest_and_are_counted(store):
    uri, db, ids = store
    report = export_warehouse(uri, db)
    assert report.duplicates_dropped == 1
    assert "1 duplicate (run, key, step) rows dropped" in report.summary()
    assert _rows(
        db, f"SELECT value FROM metrics WHERE run_id = '{ids['rank2']}' AND key = 'ft_loss' AND step = 20"
    ) == [(9.5,)]
    assert _rows(db, f"SELECT duplicates FROM _export_state WHERE run_id = '{ids['rank2']}'") == [(1,)]


def test_nan_becomes_null_with_flag(store):
    uri, db, ids = store
    report = export_warehouse(uri, db)
    assert report.nan_points == 1
    assert _rows(db, "SELECT run_id, key, step, value, is_nan FROM metrics WHERE is_nan") == [
        (ids["rank4"], "forget_kl", 50, None, True)
    ]


def test_runs_table_lifts_typed_columns(store):
    uri, db, ids = store
    export_warehouse(uri, db)
    row = _rows(
        db,
        f"SELECT kind, rank, P, dataset, seed, lr, steps, model, target_modules, parent_run_id, sweep, "
        f"point, base_fingerprint, status, experiment FROM runs WHERE run_id = '{ids['rank2']}'",
    )[0]
    assert row == (
        "run",
        2,
        29_184,
        "kjv",
        0,
        3e-4,
        40,
        "embedded",
        "q_proj,v_proj",
        ids["sweep"],
        "s1",
        "rank=2",
        "abc123",
        "FINISHED",
        "forgetlab",
    )
    assert _rows(db, f"SELECT failure, status FROM runs WHERE run_id = '{ids['failed']}'") == [
        ("loss became nan at step 11", "FAILED")
    ]
    types = dict(_rows(db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'runs'"))
    assert (types["rank"], types["P"], types["lr"], types["start_time"]) == ("INTEGER", "BIGINT", "DOUBLE", "TIMESTAMP")


def test_points_view_has_exactly_the_fit_columns_and_only_finished_runs(store):
    uri, db, ids = store
    export_warehouse(uri, db)
    table = run_query("SELECT * FROM points ORDER BY run_id, N", {}, db)
    assert tuple(table.column_names) == POINTS_COLUMNS
    assert set(table.column("run_id").to_pylist()) == {ids["rank1"], ids["rank2"], ids["rank4"]}
    assert table.num_rows == 15  # 3 runs x 5 evaluations; the NaN-only step 50 has no ft_loss
    curves = run_query(
        "SELECT step, ft_loss, forget_kl FROM curves WHERE run_id = $run ORDER BY step", {"run": ids["rank4"]}, db
    )
    assert curves.column("step").to_pylist() == [0, 10, 20, 30, 40, 50]
    final = run_query(
        "SELECT last_step, forget_kl_last, forget_kl_at_last_step, ft_loss_last, ft_loss_min FROM final "
        "WHERE run_id = $run",
        {"run": ids["rank4"]},
        db,
    ).to_pylist()[0]
    assert final["last_step"] == 50 and final["forget_kl_last"] is None and final["forget_kl_at_last_step"] is None
    assert final["ft_loss_last"] == pytest.approx(3.0 - 0.8 - 0.04) and final["ft_loss_min"] == final["ft_loss_last"]


def test_second_export_adds_nothing_and_says_so(store):
    uri, db, _ = store
    export_warehouse(uri, db)
    before = db.stat().st_mtime_ns, db.read_bytes()
    report = export_warehouse(uri, db)
    assert report.up_to_date and report.points_read == 0
    assert "nothing new" in report.summary()
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


def test_new_and_changed_runs_appear_after_the_next_export(store):
    uri, db, ids = store
    export_warehouse(uri, db)
    client = _client(Path(uri[len("sqlite:///") :]))
    new = _new_run(client, ids["experiment"], 32, "rank32")
    _log_curve(client, new, 32, [0, 10])
    client.set_terminated(new, "FINISHED")
    _log_curve(client, ids["rank1"], 1, [50], offset=5_000_000)
    report = export_warehouse(uri, db)
    assert (report.runs_new, report.runs_changed, report.runs_removed) == (1, 1, 0)
    reread = _sqlite_count(uri, f"SELECT count(*) FROM metrics WHERE run_uuid IN ('{new}', '{ids['rank1']}')")
    assert report.points_read == reread  # only the new run and the changed run are re-read
    assert _rows(db, f"SELECT count(*) FROM points WHERE run_id = '{new}'") == [(2,)]
    assert _rows(db, f"SELECT max(N) FROM points WHERE run_id = '{ids['rank1']}'") == [(50,)]
    assert _rows(db, "SELECT count(*) FROM _export_log") == [(2,)]


def test_fits_table_survives_incremental_and_full_exports(store):
    uri, db, ids = store
    export_warehouse(uri, db)
    connection = duckdb.connect(str(db))
    connection.execute("CREATE TABLE fits (law VARCHAR, r2 DOUBLE)")
    connection.execute("INSERT INTO fits VALUES ('inverse_linear', 0.95)")
    connection.close()
    client = _client(Path(uri[len("sqlite:///") :]))
    _log_curve(client, ids["rank1"], 1, [60], offset=6_000_000)
    assert not export_warehouse(uri, db).up_to_date
    assert _rows(db, "SELECT * FROM fits") == [("inverse_linear", 0.95)]
    export_warehouse(uri, db, full=True)
    assert _rows(db, "SELECT * FROM fits") == [("inverse_linear", 0.95)]


def test_failure_inside_the_write_leaves_the_old_database(store, monkeypatch):
    uri, db, ids = store
    export_warehouse(uri, db)
    old_points = _rows(db, "SELECT count(*) FROM metrics")
    client = _client(Path(uri[len("sqlite:///") :]))
    _log_curve(client, ids["rank1"], 1, [70], offset=7_000_000)

    def broken_views():
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer.schema, "views_ddl", broken_views)
    with pytest.raises(RuntimeError, match="disk full"):
        export_warehouse(uri, db)
    assert _rows(db, "SELECT count(*) FROM metrics") == old_points
    assert [p.name for p in db.parent.iterdir() if ".export-" in p.name] == []  # temp copy cleaned up
    monkeypatch.undo()
    assert export_warehouse(uri, db).runs_changed == 1


@pytest.mark.parametrize("where", ["mid-transaction", "before-swap"])
def test_kill_9_mid_export_leaves_the_old_database_readable(store, where):
    uri, db, ids = store
    export_warehouse(uri, db)
    old = _rows(db, "SELECT run_id, key, step, value FROM metrics ORDER BY ALL")
    client = _client(Path(uri[len("sqlite:///") :]))
    _log_curve(client, ids["rank2"], 2, [80], offset=8_000_000)
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from forgetlab.warehouse import writer
        from forgetlab.warehouse.export import export_warehouse
        die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
        if {where!r} == "mid-transaction":
            writer.schema.views_ddl = die   # metrics already inserted, transaction open
        else:
            writer.os.replace = die         # temp file complete, not yet swapped in
        export_warehouse({uri!r}, Path({str(db)!r}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _rows(db, "SELECT run_id, key, step, value FROM metrics ORDER BY ALL") == old
    assert [p for p in db.parent.iterdir() if ".export-" in p.name]  # the killed export's leftovers...
    report = export_warehouse(uri, db)
    assert report.runs_changed == 1
    assert [p for p in db.parent.iterdir() if ".export-" in p.name] == []  # ...are cleaned by the next one


# ---------------------------------------------------------------- remote


@pytest.fixture
def server(template, tmp_path):
    """A real `mlflow server` over a copy of the template store."""
    source, ids = template
    db = tmp_path / "server.db"
    shutil.copyfile(source, db)
    with mlflow_server(db, tmp_path / "server-artifacts") as url:
        yield url, ids


TABLES = {
    "experiments": "SELECT * FROM experiments ORDER BY ALL",
    "runs": "SELECT * FROM runs ORDER BY run_id",
    "params": "SELECT * FROM params ORDER BY ALL",
    "tags": "SELECT * FROM tags ORDER BY ALL",
    "metrics": "SELECT * FROM metrics ORDER BY run_id, key, step",
    "points": "SELECT * FROM points ORDER BY run_id, N",
}


@pytest.mark.slow
def test_remote_export_matches_direct_export(store, server, tmp_path, monkeypatch):
    uri, direct_db, _ = store
    url, _ = server
    direct = export_warehouse(uri, direct_db)
    remote_db = tmp_path / "remote.duckdb"
    remote = export_warehouse(url, remote_db)
    assert (remote.runs, remote.points_written, remote.duplicates_dropped, remote.nan_points) == (
        direct.runs,
        direct.points_written,
        direct.duplicates_dropped,
        direct.nan_points,
    )
    for name, sql in TABLES.items():
        assert _rows(remote_db, sql) == _rows(direct_db, sql), name
    assert export_warehouse(url, remote_db).up_to_date

    # Tiny response caps force the truncation and per-run fallback paths: still the same rows.
    from forgetlab.warehouse.sources import remote as remote_source

    monkeypatch.setattr(remote_source, "BULK_POINTS", 4)
    monkeypatch.setattr(remote_source, "BULK_RUNS", 2)
    monkeypatch.setattr(remote_source, "HISTORY_PAGE", 2)
    capped_db = tmp_path / "capped.duckdb"
    export_warehouse(url, capped_db)
    assert _rows(capped_db, TABLES["metrics"]) == _rows(direct_db, TABLES["metrics"])


# ---------------------------------------------------------------- query and CLI


def test_run_query_uses_header_defaults_and_overrides(store):
    uri, db, _ = store
    export_warehouse(uri, db)
    sql = (REPO / "queries" / "laws.sql").read_text()
    assert set(run_query(sql, {}, db).column("N").to_pylist()) == set()  # default min_step 50: steps 0..40 all dropped
    assert set(run_query(sql, {"min_step": 10}, db).column("N").to_pylist()) == {20, 30, 40}
    for name in ("curves", "at_step", "final", "sweep_status", "laws", "unfinished"):
        run_query((REPO / "queries" / f"{name}.sql").read_text(), {}, db)  # every shipped query runs
    status = run_query((REPO / "queries" / "sweep_status.sql").read_text(), {}, db).to_pylist()
    assert [(s["sweep"], s["sweep_status"], s["finished"]) for s in status] == [("s1", "FINISHED", 3)]


def test_at_step_leaves_out_runs_that_had_not_reached_the_step(store):
    uri, db, ids = store
    export_warehouse(uri, db)
    sql = (REPO / "queries" / "at_step.sql").read_text()

    def at(step: int) -> dict[str, int]:
        return {row["run_id"]: row["step"] for row in run_query(sql, {"step": step}, db).to_pylist()}

    # The failed run stopped at step 10: it is in the comparison at 10, not at 25.
    assert at(10) == {ids["rank1"]: 10, ids["rank2"]: 10, ids["rank4"]: 10, ids["failed"]: 10}
    assert at(25) == {ids["rank1"]: 20, ids["rank2"]: 20, ids["rank4"]: 20}  # latest evaluation at or before 25
    assert at(45) == {ids["rank4"]: 40}  # only rank 4 went on (to its NaN evaluation at 50)
    assert at(100) == {}


def test_tradeoff_keeps_base_models_apart(tmp_path):
    """Two base models under one data set: each mitigation is compared with its own model's baseline."""
    from mlflow.entities import Metric

    db = tmp_path / "mlflow.db"
    client = _client(db)
    experiment_id = client.create_experiment("forgetlab")
    effect = {"embedded": 0.1, "embedded-tiny": 0.3}  # how much replay lowers forgetting, per model
    for model, shift in (("embedded", 0.0), ("embedded-tiny", 1.0)):  # the tiny base forgets more overall
        for replay in (0.0, 0.25):
            for rank in (1, 2, 4):
                run_id = _new_run(
                    client,
                    experiment_id,
                    rank,
                    f"{model}-r{rank}-p{replay}",
                    params={"model.name": model, "mitigation.replay": replay},
                )
                metrics = []
                for step in (0, 10, 20, 30):
                    ft_loss = 3.0 - 0.02 * step - 0.05 * rank
                    soft = shift + 6.0 - ft_loss - (effect[model] if replay else 0.0)
                    metrics += [
                        Metric("ft_loss", ft_loss, T0 + step, step),
                        Metric("forget_soft", soft, T0 + step, step),
                    ]
                client.log_batch(run_id, metrics=metrics)
                client.set_terminated(run_id, "FINISHED")
    warehouse = tmp_path / "forgetlab.duckdb"
    export_warehouse(f"sqlite:///{db}", warehouse)
    rows = run_query((REPO / "queries" / "tradeoff.sql").read_text(), {"min_step": 0}, warehouse).to_pylist()
    got = {(row["model"], row["replay"]): row for row in rows}
    assert sorted(got) == [("embedded", 0.0), ("embedded", 0.25), ("embedded-tiny", 0.0), ("embedded-tiny", 0.25)]
    for model in effect:
        assert got[(model, 0.25)]["less_forgetting"] == pytest.approx(effect[model], abs=1e-6)
        assert got[(model, 0.0)]["less_forgetting"] == pytest.approx(0.0, abs=1e-6)
        assert got[(model, 0.0)]["runs"] == 3 and got[(model, 0.0)]["r2"] == pytest.approx(1.0)


def _cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forgetlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_query_prints_rows_csv_and_binds_params(store):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    uri, db, ids = store
    runner = CliRunner()
    common = ["--db", str(db), "--tracking-uri", uri]
    result = runner.invoke(app, ["query", "-e", "SELECT run_id, N, L_ft FROM points WHERE N = 40 ORDER BY P", *common])
    assert result.exit_code == 0, result.output
    assert ids["rank1"] in result.stdout and ids["rank4"] in result.stdout
    assert "exported" in result.stderr  # no warehouse yet: the query exported first
    result = runner.invoke(
        app,
        [
            "query",
            "-e",
            "SELECT rank, N FROM points WHERE N = $n ORDER BY rank",
            "--param",
            "n=30",
            "--format",
            "csv",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ['"rank","N"', "1,30", "2,30", "4,30"]
    out = db.parent / "points.parquet"
    result = runner.invoke(
        app,
        [
            "query",
            str(REPO / "queries" / "laws.sql"),
            "-p",
            "min_step=0",
            "--format",
            "parquet",
            "--output",
            str(out),
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    assert tuple(pq.read_table(out).column_names) == POINTS_COLUMNS


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown", "parquet"])
def test_cli_query_writes_intervals_as_duckdb_does(store, fmt):
    """Intervals printed as `MonthDayNano(months=0, days=0, nanoseconds=90000000000)` (table, markdown);
    CSV and Parquet stopped with a traceback (issue 28)."""
    from typer.testing import CliRunner

    from forgetlab.cli import app

    uri, db, _ = store
    out = db.parent / "intervals.parquet"
    sql = "SELECT INTERVAL 90 SECOND AS short, INTERVAL '1 year 2 months 3 days 04:05:06.5' AS long, -INTERVAL 90 SECOND AS back"
    extra = ["--output", str(out)] if fmt == "parquet" else []
    result = CliRunner().invoke(
        app, ["query", "-e", sql, "--format", fmt, *extra, "--db", str(db), "--tracking-uri", uri]
    )
    assert result.exit_code == 0 and result.exception is None, result.output
    expected = ["00:01:30", "1 year 2 months 3 days 04:05:06.5", "-00:01:30"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert list(pq.read_table(out).to_pylist()[0].values()) == expected
    else:
        assert all(text in result.stdout for text in expected) and "MonthDayNano" not in result.stdout


def test_cli_query_exports_when_the_store_changed(store):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    uri, db, ids = store
    export_warehouse(uri, db)
    client = _client(Path(uri[len("sqlite:///") :]))
    _log_curve(client, ids["rank4"], 4, [90], offset=9_000_000)
    common = [
        "-e",
        f"SELECT max(N) FROM points WHERE run_id = '{ids['rank4']}'",
        "--format",
        "csv",
        "--db",
        str(db),
        "--tracking-uri",
        uri,
    ]
    result = CliRunner().invoke(app, ["query", "--no-export", *common])
    assert result.stdout.splitlines()[1] == "40" and "stale" in result.stderr
    result = CliRunner().invoke(app, ["query", *common])
    assert result.stdout.splitlines()[1] == "90" and "1 changed" in result.stderr


def test_cli_errors_are_one_line_exit_2_and_writes_are_refused(store):
    uri, db, _ = store
    export_warehouse(uri, db)
    before = db.read_bytes()
    for sql, expected in [
        ("SELECT * FRM points", "syntax error"),
        ("SELECT nope FROM points", "line 1"),
        ("DELETE FROM metrics", "read-only"),
        ("CREATE TABLE t AS SELECT 1", "read-only"),
    ]:
        done = _cli(["query", "-e", sql, "--db", str(db), "--tracking-uri", uri], cwd=db.parent)
        assert done.returncode == 2, (sql, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert expected in done.stderr
    assert db.read_bytes() == before


def test_query_path_imports_no_torch_and_no_mlflow(store):
    uri, db, _ = store
    script = textwrap.dedent(f"""
        import sys
        from forgetlab.cli import main
        for argv in (["export"], ["query", "-e", "SELECT count(*) FROM points", "--format", "csv"]):
            sys.argv = ["forgetlab", *argv, "--db", {str(db)!r}, "--tracking-uri", {uri!r}]
            try:
                main()
            except SystemExit as done:
                assert not done.code, done.code
            if argv == ["export"]:  # pandas costs an export a third of its time and is not needed
                print("PANDAS AFTER EXPORT", "pandas" in sys.modules)
        heavy = [m for m in ("torch", "lightning", "transformers", "peft", "mlflow") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert "PANDAS AFTER EXPORT False" in done.stdout, done.stdout
    quick = _cli(["query", "-e", "SELECT count(*) FROM runs", "--db", str(db), "--no-export"], cwd=db.parent)
    assert quick.returncode == 0, quick.stderr


def test_docs_name_every_column_of_every_table_and_view(store):
    uri, db, _ = store
    export_warehouse(uri, db)
    docs = (REPO / "docs" / "warehouse.md").read_text()
    columns = _rows(db, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'")
    missing = [
        (table, column)
        for table, column in columns
        if f"`{column}`" not in docs and not column.endswith(("_last", "_min", "_at_last_step"))
    ]
    assert missing == []
    assert all(f"`{table}`" in docs for table, _ in columns)


def test_parallel_readers_of_a_wal_store_no_writer_has_open_do_not_collide(tmp_path):
    # A store whose last writer closed cleanly has no -wal/-shm files; read-only connections opened
    # at once then race to rebuild the index ("database is locked" without a busy timeout). This is
    # the state right after `forgetlab run` ends, so every export after a run starts here.
    import sqlite3

    from forgetlab.warehouse.sources.sqlite import SqliteSource

    db = tmp_path / "mlflow.db"
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE metrics (key TEXT, value REAL, timestamp INTEGER, step INTEGER, is_nan INTEGER, run_uuid TEXT)"
    )
    connection.executemany(
        "INSERT INTO metrics VALUES (?, ?, 0, ?, 0, ?)",
        [("ft_loss", 1.0, step, f"run{step % 3}") for step in range(300)],
    )
    connection.execute("CREATE TABLE runs (run_uuid TEXT)")
    connection.executemany("INSERT INTO runs VALUES (?)", [(f"run{index}",) for index in range(3)])
    for index in range(40):  # a schema the size of MLflow's widens the race window
        connection.execute(f"CREATE TABLE other{index} (a TEXT, b INTEGER, c REAL)")
        connection.execute(f"CREATE INDEX other{index}_a ON other{index} (a, b)")
    connection.commit()
    connection.close()
    for attempt in range(20):
        for leftover in (tmp_path / "mlflow.db-wal", tmp_path / "mlflow.db-shm"):
            leftover.unlink(missing_ok=True)
        source = SqliteSource.__new__(SqliteSource)
        source._uri = f"{db.as_uri()}?mode=ro"
        source._run_count, source._max_rowid, source._curve_index = 3, 300, None
        table = source.read_metrics(["run0", "run1", "run2"])
        assert table.num_rows == 300, attempt
