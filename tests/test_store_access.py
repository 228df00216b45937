"""Who may write a tracking store, and when: read-only stores, a run's liveness, the schema the export reads.

- A store in a read-only folder is one line naming the store and the fix, exit 2, from every command
  that would write it (`run`, `sweep`, `fit`) or write beside it (`export`), and it stays as it was.
  Root ignores file modes, so the read-only folder is a read-only bind mount (root only; skipped otherwise).
- Whether a RUNNING run is alive is one rule (`forgetlab.tracking.liveness`), the same for
  `run --resume` and for a sweep deciding what to resume.
- The export reads MLflow's tables directly only at schema revisions it was tested on and says so
  in one line for any other (docs/warehouse.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import invoke
from tiny import R4, REPO

from forgetlab.warehouse.sources.revisions import TESTED_REVISIONS

MINUTE_MS = 60_000


# ---------------------------------------------------------------------------- is this run alive


def _running_run(tmp_path, tags: dict[str, str], start_time: int):
    """A RUNNING fine-tuning run with a resumable config, owned as `tags` say; returns (store URI, run)."""
    from forgetlab import tracking

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = tracking.client(uri, prepare=True)
    experiment_id = client.create_experiment("alive", artifact_location=(tmp_path / "mlruns" / "artifacts").as_uri())
    run = client.create_run(
        experiment_id,
        start_time=start_time,
        run_name="r4",
        tags={"forgetlab.kind": "run", "forgetlab.point": "p", **tags},
    )
    client.log_text(run.info.run_id, R4.read_text(), "config.yaml")
    return uri, client.get_run(run.info.run_id)


def _dead_pid() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return str(child.pid)


@pytest.mark.parametrize(
    "host, pid, minutes_ago, heartbeat, alive",
    [
        ("another-machine", "self", 1, True, True),  # fresh heartbeat: alive, whatever its pid means here
        ("another-machine", "self", 31, True, False),  # silent past the 30 minutes: dead
        ("another-machine", "self", 31, False, False),  # started 31 minutes ago and never wrote: dead
        ("this-machine", "self", 31, True, True),  # its process runs: alive, however long it has been quiet
        ("this-machine", "dead", 0, True, False),  # its process is gone: dead, however fresh its heartbeat
    ],
)
def test_resume_and_sweep_apply_one_rule_for_a_running_run(
    tmp_path, capsys, monkeypatch, host, pid, minutes_ago, heartbeat, alive
):
    import socket

    from forgetlab.sweeps.spec import SweepPoint
    from forgetlab.sweeps.state import classify

    monkeypatch.chdir(tmp_path)
    now_ms = int(time.time() * 1000)
    tags = {
        "forgetlab.host": socket.gethostname() if host == "this-machine" else host,
        "forgetlab.pid": str(os.getpid()) if pid == "self" else _dead_pid(),
    }
    if heartbeat:
        tags["forgetlab.heartbeat_ms"] = str(now_ms - minutes_ago * MINUTE_MS)
    uri, run = _running_run(tmp_path, tags, start_time=now_ms - minutes_ago * MINUTE_MS)

    [state] = classify([SweepPoint("p", {}, None)], [run], stale_minutes=30, now_ms=now_ms)
    assert state.state == ("running" if alive else "rerun")  # rerun: no checkpoint to resume from

    code, out, err = invoke(
        ["run", "--resume", run.info.run_id, "--tracking-uri", uri, "--print-config"], capsys, monkeypatch
    )
    if alive:
        assert code == 2 and err.count("\n") == 1 and "is still running" in err and "Traceback" not in err, err
    else:
        assert code == 0 and "lora:" in out, err  # taken over: its config comes back


# ---------------------------------------------------------------------------- a read-only store


BUILD_STORE = """
import sys
from pathlib import Path
from synthetic_store import build_store
from forgetlab import tracking
database = build_store(Path(sys.argv[1]))
tracking.prepare_local_store(f"sqlite:///{database}")  # WAL, as every forgetlab writer leaves it
print(tracking.client(f"sqlite:///{database}").search_runs(["1"], max_results=1)[0].info.run_id)
"""


@pytest.fixture
def read_only_lab(tmp_path):
    """A folder holding a store of finished runs (`mlruns/mlflow.db`, WAL mode as forgetlab leaves it,
    no writer open), mounted read-only over itself; yields (folder, a run id)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only folder needs a bind mount (root): root ignores file modes, so chmod cannot make one")
    folder = tmp_path / "lab"
    # Built in a process of its own, which closes the store on exit as a finished run does (this
    # process would keep MLflow's connections, and with them the -wal and -shm files, open).
    built = subprocess.run(
        [sys.executable, "-c", BUILD_STORE, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    run_id = built.stdout.strip()
    assert [
        path.name for path in (folder / "mlruns").iterdir() if path.name.startswith("mlflow.db-")
    ] == []  # no writer open
    if subprocess.run(["mount", "--bind", folder, folder]).returncode != 0:
        pytest.skip("mount --bind is not allowed here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", folder]).returncode != 0:
            pytest.skip("a read-only remount is not allowed here")
        yield folder, run_id
    finally:
        # Lazy: a file a failed command left open must not keep the mount (and the folder) busy.
        subprocess.run(["umount", "--lazy", folder], check=True)


def _listing(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in sorted(folder.rglob("*"))}


def test_a_read_only_store_is_one_line_naming_it_from_every_command(read_only_lab, tmp_path, capsys, monkeypatch):
    folder, run_id = read_only_lab
    store = folder / "mlruns" / "mlflow.db"
    before = _listing(folder)
    monkeypatch.chdir(folder)
    elsewhere = tmp_path / "elsewhere.duckdb"
    cases = {
        "export": (["export", "--no-progress"], "cannot read the tracking store"),
        "export elsewhere": (["export", "--no-progress", "--db", str(elsewhere)], "cannot read the tracking store"),
        "run": (["run", "--config", str(R4), "model.name=embedded-tiny", "--quiet"], "cannot be written"),
        "resume": (["run", "--resume", run_id], "cannot be written"),
        "sweep": (["sweep", "--config", str(REPO / "lightning_configs" / "sweep-smoke.yaml")], "cannot be written"),
        "fit": (["fit", "--law", "linear"], "cannot be written"),
    }
    for name, (args, problem) in cases.items():
        code, out, err = invoke(args, capsys, monkeypatch)
        assert code == 2, (name, out[-2000:], err[-2000:])
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert str(store) in err and problem in err and "read-only file system" in err, (name, err)
    assert _listing(folder) == before and not elsewhere.exists()


def test_a_warehouse_that_cannot_be_written_is_one_line(read_only_lab, tmp_path, capsys, monkeypatch):
    # The store is readable once a reader has its -shm file (a copy in a writable folder here); the
    # warehouse beside the read-only one is not writable: one line before the long read.
    folder, _ = read_only_lab
    copy = tmp_path / "copy.db"
    shutil.copyfile(folder / "mlruns" / "mlflow.db", copy)
    target = folder / "mlruns" / "forgetlab.duckdb"
    code, _, err = invoke(
        ["export", "--no-progress", "--tracking-uri", f"sqlite:///{copy}", "--db", str(target)], capsys, monkeypatch
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot write the warehouse {target}" in err and "--db PATH" in err
    assert not target.exists()


# ---------------------------------------------------------------------------- MLflow's schema revision

T0 = 1_700_000_000_000


def _store_at(database: Path, revision: str) -> None:
    """A store as MLflow creates one, stopped at `revision`: its initial tables, then its own migrations up to there."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    url = f"sqlite:///{database}"
    engine = sqlalchemy.create_engine(url)
    try:
        InitialBase.metadata.create_all(engine)
        config = _get_alembic_config(url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _write_runs(database: Path) -> None:
    """Two runs written by SQL in the columns every tested revision has: params, tags, a curve, a duplicate point."""
    import sqlite3

    connection = sqlite3.connect(database)
    try:
        connection.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
            "last_update_time) VALUES (7, 'lab', 'file:///artifacts', 'active', ?, ?)",
            (T0, T0),
        )
        for index, run_id in enumerate(("a" * 32, "b" * 32)):
            connection.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, "
                "end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (?, ?, 'LOCAL', '', '', 'me', 'FINISHED', ?, ?, '', 'active', 'file:///artifacts/x', 7)",
                (run_id, f"r{index + 1}", T0 + index, T0 + 1000),
            )
            connection.execute(
                "INSERT INTO params (key, value, run_uuid) VALUES ('lora.rank', ?, ?)", (str(index + 1), run_id)
            )
            connection.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('forgetlab.kind', 'run', ?)", (run_id,))
            for step in range(3):
                connection.execute(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES "
                    "('ft_loss', ?, ?, ?, ?, 0)",
                    (3.0 - step - index, T0 + step, run_id, step),
                )
        connection.execute(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES ('ft_loss', 9.0, ?, ?, 2, 0)",
            (T0 + 5, "a" * 32),
        )  # a resume's second write of step 2
        connection.commit()
    finally:
        connection.close()


def _exported(db: Path) -> list[tuple]:
    import duckdb

    connection = duckdb.connect(str(db), read_only=True)
    try:
        return connection.sql(
            "SELECT r.name, r.experiment, p.value, m.step, m.value FROM metrics m JOIN runs r USING (run_id) "
            "JOIN params p USING (run_id) WHERE p.key = 'lora.rank' ORDER BY ALL"
        ).fetchall()
    finally:
        connection.close()


EXPECTED = [
    ("r1", "lab", "1", 0, 3.0),
    ("r1", "lab", "1", 1, 2.0),
    ("r1", "lab", "1", 2, 9.0),
    ("r2", "lab", "2", 0, 2.0),
    ("r2", "lab", "2", 1, 1.0),
    ("r2", "lab", "2", 2, 0.0),
]


@pytest.mark.parametrize("revision", sorted(TESTED_REVISIONS))
def test_the_export_reads_every_tested_schema_revision_without_a_note(tmp_path, revision):
    from forgetlab.warehouse.export import export_warehouse

    database = tmp_path / "mlflow.db"
    _store_at(database, revision)
    _write_runs(database)
    report = export_warehouse(f"sqlite:///{database}", tmp_path / "w.duckdb")
    assert _exported(tmp_path / "w.duckdb") == EXPECTED
    assert report.duplicates_dropped == 1 and "not tested" not in report.summary()


def test_an_untested_schema_revision_is_said_in_one_line(tmp_path, capsys, monkeypatch):
    import sqlite3

    database = tmp_path / "mlflow.db"
    _store_at(database, "heads")
    _write_runs(database)
    with sqlite3.connect(database) as connection:  # as a newer MLflow leaves it
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed0001'")
    store = f"sqlite:///{database}"
    code, out, err = invoke(
        ["export", "--no-progress", "--tracking-uri", store, "--db", str(tmp_path / "w.duckdb")], capsys, monkeypatch
    )
    assert code == 0 and out.count("\n") == 1, (out, err)
    assert out.count("schema revision f00dfeed0001, which forgetlab's direct reader was not tested on") == 1
    assert "--tracking-uri http://" in out and _exported(tmp_path / "w.duckdb") == EXPECTED  # read all the same

    # A table changed beyond what the reader knows: one line, which says why.
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE runs RENAME COLUMN user_id TO owner")
    code, out, err = invoke(
        ["export", "--no-progress", "--full", "--tracking-uri", store, "--db", str(tmp_path / "w2.duckdb")],
        capsys,
        monkeypatch,
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "no such column: user_id" in err and "f00dfeed0001" in err and not (tmp_path / "w2.duckdb").exists()
