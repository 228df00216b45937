"""A team store: an MLflow server on PostgreSQL, runs, sweeps and fits logging through it, exports.

The module starts a throwaway PostgreSQL cluster (tests/postgres_server.py) and `mlflow server
--backend-store-uri postgresql+psycopg://... --artifacts-destination ...` on loopback ports, once,
and stops both by PID at the end. It is skipped, with one line, only where PostgreSQL's server
programs are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import test_warehouse as wh
from mlflow_server import mlflow_server
from postgres_server import postgres_bindir, postgres_server
from tiny import R4, REPO, TINY_BASE, overrides_block

from forgetlab.warehouse.export import export_warehouse

CURVE_KEYS = ("ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree")
STEPS = ["train.steps=10", "train.eval_every=5"]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """(PostgreSQL URI of the backend store, the MLflow server's URL) for this module."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (no pg_config or initdb): the team-store tests need its server programs"
        )
    artifacts = tmp_path_factory.mktemp("team-artifacts")
    with postgres_server(bindir) as database:
        backend = database.replace("postgresql://", "postgresql+psycopg://", 1)  # MLflow's driver: psycopg 3
        with mlflow_server(backend, artifacts, proxy_artifacts=True) as url:
            yield database, url


def _forgetlab(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "forgetlab", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen, timeout: float = 900) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, (out[-3000:], err[-3000:])
    return out


def _sql(database: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(database) as connection:
        return connection.execute(sql).fetchall()


def _rows(db: Path, sql: str) -> list[tuple]:
    connection = duckdb.connect(str(db), read_only=True)
    try:
        return connection.sql(sql).fetchall()
    finally:
        connection.close()


@pytest.mark.slow
def test_runs_sweeps_and_fits_log_through_the_server_and_no_point_is_lost(team, workdir):
    database, url = team
    (workdir / "r4.yaml").write_text(R4.read_text())
    (workdir / "shards.yaml").write_text(
        "name: shards\nbase: r4.yaml\noverrides:\n"
        + overrides_block([*TINY_BASE, *STEPS])
        + "grid:\n  lora.rank: [1, 2]\n  seed: [2]\n"
    )
    # (A single `forgetlab run` against a server: test_tracking_server.py; every point here is one.)
    out = _finish(
        _forgetlab(
            "sweep",
            "--config",
            str(REPO / "lightning_configs" / "sweep-smoke.yaml"),
            "--jobs",
            "4",
            "--tracking-uri",
            url,
            cwd=workdir,
        )
    )
    assert "4 finished, 0 failed" in out
    shards = [
        _forgetlab("sweep", "--config", "shards.yaml", "--shard", f"{i}/2", "--tracking-uri", url, cwd=workdir)
        for i in (1, 2)
    ]  # two machines of an array job, at once
    assert all("1 finished, 0 failed" in _finish(process) for process in shards)
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # nothing went to a local store

    # Every point run has every curve metric at every evaluation step, nothing twice.
    stored = _sql(
        database,
        "SELECT r.run_uuid, m.key, m.step FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "AND t.key = 'forgetlab.kind' AND t.value = 'run' JOIN metrics m ON m.run_uuid = r.run_uuid",
    )
    runs = {run_id for run_id, _, _ in stored}
    assert len(runs) == 6  # 4 smoke points, 2 shard points
    for run_id in runs:
        for key in CURVE_KEYS:
            assert sorted(step for r, k, step in stored if r == run_id and k == key) == [0, 5, 10], (run_id, key)

    # Both export paths read every point the database holds, and agree row for row.
    total = _sql(database, "SELECT count(*) FROM metrics")[0][0]
    direct = export_warehouse(database, workdir / "direct.duckdb")
    rest = export_warehouse(url, workdir / "rest.duckdb")
    assert direct.points_read == rest.points_read == total
    for name, sql in wh.TABLES.items():
        assert _rows(workdir / "direct.duckdb", sql) == _rows(workdir / "rest.duckdb", sql), name
    assert export_warehouse(database, workdir / "direct.duckdb").up_to_date

    fit = _finish(
        _forgetlab(
            "fit",
            "--law",
            "linear",
            "--param",
            "min_step=0",
            "--bootstrap",
            "2",
            "--no-validation",
            "--db",
            str(workdir / "direct.duckdb"),
            "--tracking-uri",
            url,
            cwd=workdir,
        )
    )
    assert "linear" in fit
    # Active runs only: two shard launches that raced for the sweep's parent leave one, the other deleted.
    kinds = _sql(
        database,
        "SELECT t.value, count(*) FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
        "WHERE t.key = 'forgetlab.kind' AND r.lifecycle_stage = 'active' AND r.experiment_id NOT IN "
        "(SELECT experiment_id FROM experiments WHERE name LIKE 'race-%') GROUP BY t.value",
    )
    assert dict(kinds)["fit"] >= 1 and dict(kinds)["sweep"] == 2


def _by_name(db: Path, experiment: str) -> dict[str, list[tuple]]:
    """One experiment's tables with run ids replaced by run names, to compare stores with other ids."""
    runs = f"(SELECT * FROM runs WHERE experiment = '{experiment}')"
    return {
        "metrics": _rows(
            db,
            f"SELECT r.name, m.key, m.step, m.value, m.timestamp, m.is_nan FROM metrics m "
            f"JOIN {runs} r USING (run_id) ORDER BY ALL",
        ),
        "params": _rows(db, f"SELECT r.name, p.key, p.value FROM params p JOIN {runs} r USING (run_id) ORDER BY ALL"),
        "runs": _rows(
            db,
            f"SELECT name, status, lifecycle_stage, kind, rank, P, dataset, seed, lr, steps, model, sweep, "
            f"point, failure FROM {runs} ORDER BY ALL",
        ),
        "points": _rows(
            db, f"SELECT r.name, p.* EXCLUDE (run_id) FROM points p JOIN {runs} r USING (run_id) ORDER BY ALL"
        ),
    }


@pytest.mark.slow
def test_direct_postgres_export_matches_the_rest_and_sqlite_paths(team, tmp_path):
    from mlflow.tracking import MlflowClient

    database, url = team
    wh.build_store(MlflowClient(url), experiment="same-runs")  # beside the other test's runs, if any
    sqlite_db = tmp_path / "mlflow.db"
    wh.build_store(MlflowClient(f"sqlite:///{sqlite_db}"), (tmp_path / "artifacts").as_uri())

    direct = export_warehouse(database, tmp_path / "direct.duckdb")
    rest = export_warehouse(url, tmp_path / "rest.duckdb")
    local = export_warehouse(f"sqlite:///{sqlite_db}", tmp_path / "local.duckdb")
    assert (direct.duplicates_dropped, direct.nan_points) == (rest.duplicates_dropped, rest.nan_points)
    for name, sql in wh.TABLES.items():
        assert _rows(tmp_path / "direct.duckdb", sql) == _rows(tmp_path / "rest.duckdb", sql), name

    # The same runs written to SQLite: the same rows, once run ids are replaced by run names.
    assert _by_name(tmp_path / "direct.duckdb", "same-runs") == _by_name(tmp_path / "local.duckdb", "forgetlab")
    assert (local.duplicates_dropped, local.nan_points) == (1, 1)


@pytest.mark.slow
def test_direct_postgres_export_keeps_unlisted_keys_and_breaks_ties_by_write_order(team, tmp_path):
    # The direct reader codes keys from MLflow's latest_metrics; a row whose key is not listed
    # there still comes through. Two rows of one (run, key, step) with the same timestamp: the
    # one written last wins, as in SQLite (rowid) and on the server.
    import psycopg
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    database, url = team
    client = MlflowClient(url)
    run = client.create_run(client.create_experiment("unlisted-keys")).info.run_id
    client.log_batch(run, metrics=[Metric("ft_loss", 3.0 - step, wh.T0 + step, step) for step in range(3)])
    with psycopg.connect(database) as connection:
        insert = (
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (%s, %s, %s, %s, %s, false)"
        )
        connection.execute(insert, ("unlisted", 1.5, wh.T0, run, 0))
        for value in (7.0, 8.0):  # same run, key, step and timestamp: the later row is what the run ended with
            connection.execute(insert, ("ft_loss", value, wh.T0 + 99, run, 5))
    report = export_warehouse(database, tmp_path / "direct.duckdb")
    assert report.duplicates_dropped >= 1
    assert _rows(
        tmp_path / "direct.duckdb", f"SELECT key, step, value FROM metrics WHERE run_id = '{run}' ORDER BY ALL"
    ) == [("ft_loss", 0, 3.0), ("ft_loss", 1, 2.0), ("ft_loss", 2, 1.0), ("ft_loss", 5, 8.0), ("unlisted", 0, 1.5)]


@pytest.mark.slow
def test_direct_postgres_export_reads_the_schema_revision_and_says_when_untested(team, tmp_path):
    import psycopg

    from forgetlab.warehouse.sources.revisions import TESTED_REVISIONS

    database, _ = team
    [(revision,)] = _sql(database, "SELECT version_num FROM alembic_version")
    note = "which forgetlab's direct reader was not tested on"
    assert (note in export_warehouse(database, tmp_path / "a.duckdb").summary()) == (revision not in TESTED_REVISIONS)
    with psycopg.connect(database) as connection:  # as a newer MLflow leaves it; put back below
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed0001'")
    try:
        summary = export_warehouse(database, tmp_path / "b.duckdb").summary()
    finally:
        with psycopg.connect(database) as connection:
            connection.execute("UPDATE alembic_version SET version_num = %s", (revision,))
    assert summary.count(f"schema revision f00dfeed0001, {note}") == 1 and "--tracking-uri http://" in summary


def test_export_from_an_unreachable_postgres_store_is_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgetlab",
            "export",
            "--tracking-uri",
            "postgresql://nobody@127.0.0.1:1/mlflow",
            "--db",
            str(tmp_path / "w.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "cannot read the PostgreSQL store postgresql://" in done.stderr
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.slow
def test_experiments_tags_and_runs_set_up_by_many_processes_at_once_all_arrive(team, tmp_path):
    # A SLURM array's first tasks on a fresh team server: the processes reach each set-up step in
    # the same instant (a barrier releases them: tests/concurrent_setup.py). MLflow's tag and
    # dataset writes read, then insert, so two at once collide on a unique key; each such step must
    # be create-or-get or set-then-reread, and no process may die of it.
    from concurrent_setup import race

    from forgetlab.mlflow_ui import missing_view_tags

    database, url = team
    processes, experiments = 6, [f"race-{index}" for index in range(8)]
    outcomes = race(url, processes, experiments, str(REPO / "lightning_configs" / "sweep-smoke.yaml"))
    failed = [outcome for _, outcome in sorted(outcomes.items()) if outcome != "ok"]
    # The first process to fail breaks the barrier for the others: show its error, not theirs.
    assert failed == [], next((text for text in failed if "BrokenBarrierError" not in text), failed[0])

    found = _sql(
        database, "SELECT name, experiment_id FROM experiments WHERE name LIKE 'race-%' AND lifecycle_stage = 'active'"
    )
    assert sorted(name for name, _ in found) == experiments  # each created once
    for name, experiment_id in found:
        tags = dict(_sql(database, f"SELECT key, value FROM experiment_tags WHERE experiment_id = {experiment_id}"))
        assert missing_view_tags(tags) == {}, name  # tagged for the UI's training view
        runs = _sql(
            database,
            "SELECT r.run_uuid, r.status, count(p.key) FROM runs r LEFT JOIN params p USING (run_uuid) "
            f"WHERE r.experiment_id = {experiment_id} AND r.name LIKE 'p%' GROUP BY r.run_uuid, r.status",
        )
        assert sorted(status for _, status, _ in runs) == ["FINISHED"] * processes, name  # every run, finished
        assert {params for _, _, params in runs} == {2}, name
        [(datasets,)] = _sql(database, f"SELECT count(*) FROM datasets WHERE experiment_id = {experiment_id}")
        [(linked,)] = _sql(
            database,
            "SELECT count(DISTINCT destination_id) FROM inputs WHERE destination_type = 'RUN' "
            f"AND destination_id IN (SELECT run_uuid FROM runs WHERE experiment_id = {experiment_id})",
        )
        assert (datasets, linked) == (1, processes), name  # one shared data set, linked to every run

    # The sweep's parent: every child hangs under an active parent run of the sweep.
    last = dict(found)[experiments[-1]]
    parents = _sql(
        database,
        "SELECT t.value, r.lifecycle_stage, p.lifecycle_stage, pt.value FROM runs r "
        "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId' "
        "JOIN runs p ON p.run_uuid = t.value "
        "JOIN tags pt ON pt.run_uuid = p.run_uuid AND pt.key = 'forgetlab.kind' "
        f"WHERE r.experiment_id = {last} AND r.name LIKE 'child%'",
    )
    assert len(parents) == processes and {row[1:] for row in parents} == {("active", "active", "sweep")}, parents
