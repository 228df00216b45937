"""Faults, concurrent writers and safety: the guarantees listed in docs/reliability.md.

Kills are tested where the thing killed lives: a run (tests/test_run.py, SIGKILL then
`--resume`), a sweep (tests/test_sweep.py, SIGKILL then rerun), an export
(tests/test_warehouse.py, SIGKILL mid-transaction and before the swap). This file covers a
diverging run, several processes logging into one new SQLite store, and what must never be
possible: exposing the UI by default, writing through `forgetlab query`, running a model's own
code unasked, unpickling arbitrary objects, and credentials reaching the store.
"""

from __future__ import annotations

import ast
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from cli_helpers import invoke
from tiny import R4, TINY_BASE, overrides_block

REPO = Path(__file__).resolve().parents[1]
TINY = list(TINY_BASE)
EVERY_STEP = ("ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree", "lr")


def forgetlab(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forgetlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else None,
    )


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


# ---------------------------------------------------------------------------- divergence


def test_diverging_run_is_failed_with_its_reason_and_left_out_of_fits(tmp_path, forgetlab_cache, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    done = forgetlab(
        "run",
        "--config",
        str(R4),
        *TINY,
        "train.lr=1e30",
        "train.max_grad_norm=null",
        "train.warmup_steps=0",
        "train.steps=10",
        "train.eval_every=5",
        "--quiet",
        cwd=tmp_path,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        "diverged (loss became nan at step" in lines[0] and "marked FAILED" in lines[0] and "lower train.lr" in lines[0]
    )

    client = MlflowClient(store_uri(tmp_path))
    [run] = client.search_runs([client.get_experiment_by_name("forgetlab").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["forgetlab.failure"].startswith("loss became nan at step")
    assert [point.step for point in client.get_metric_history(run.info.run_id, "ft_loss")] == [
        0
    ]  # logged before it broke

    monkeypatch.chdir(tmp_path)
    assert invoke(["export", "--no-progress"], capsys, monkeypatch)[0] == 0
    code, out, err = invoke(["fit", "--law", "linear", "-B", "5", "--no-validation"], capsys, monkeypatch)
    assert "excluded 1 run that did not finish (FAILED/KILLED)" in out
    assert code == 2 and "the query returned no points" in err  # the only run is not a point


def test_a_run_whose_model_collapses_is_failed_with_its_reason(tmp_path, forgetlab_cache):
    """At lr 1e4 the tiny base falls to uniform predictions (ft_loss = ln 512) with a finite loss: it
    used to finish, with forget_agree 1 at every step. It is stopped there, the point that shows it logged."""
    from mlflow.tracking import MlflowClient

    done = forgetlab(
        "run",
        "--config",
        str(R4),
        *TINY,
        "train.lr=1e4",
        "train.steps=10",
        "train.eval_every=5",
        "--quiet",
        cwd=tmp_path,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        "collapsed to uniform predictions at step 5" in lines[0]
        and "ln 512" in lines[0]
        and "marked FAILED" in lines[0]
    ), lines[0]

    client = MlflowClient(store_uri(tmp_path))
    [run] = client.search_runs([client.get_experiment_by_name("forgetlab").experiment_id])
    assert run.info.status == "FAILED" and "collapsed" in run.data.tags["forgetlab.failure"]
    history = {
        key: [point.value for point in client.get_metric_history(run.info.run_id, key)]
        for key in ("ft_loss", "forget_agree")
    }
    assert history["ft_loss"][-1] == pytest.approx(math.log(512), rel=1e-3) and len(history["ft_loss"]) == 2
    assert history["forget_agree"] == [1.0, pytest.approx(1 / 512)]


@pytest.mark.parametrize(
    "ft_loss, start_loss, collapsed",
    [
        (math.log(512), 4.1, True),  # fell to uniform predictions
        (math.log(512) + 0.5, 4.1, True),  # worse than uniform
        (5.0, 4.1, False),  # worse, but still better than guessing
        (math.log(512), math.log(512) + 0.01, False),  # an untrained base starts there: nothing to collapse from
        (math.log(512), None, False),
        (math.nan, 4.1, True),
        (math.inf, None, True),
    ],
)
def test_collapse_is_a_loss_at_uniform_after_a_start_below_it(ft_loss, start_loss, collapsed):
    from forgetlab.finetune.curves import collapse

    assert (collapse(ft_loss, start_loss, 512, 5) is not None) == collapsed


# ---------------------------------------------------------------------------- concurrent writers

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from forgetlab.tracking import RunTracker
    uri, name, ready, steps = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    (ready / name).touch()
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < 4 and time.time() < deadline:  # all four hit the new store at once
        time.sleep(0.005)
    tracker = RunTracker(uri, "forgetlab")
    tracker.start(name, {"forgetlab.kind": "run"})
    tracker.log_params({"writer": name})
    for step in range(steps):
        tracker.log_metrics({f"m{key}": float(step) for key in range(8)}, step)
        tracker.flush()
    tracker.finish("FINISHED")
""")


def test_four_writers_creating_one_new_store_at_once_lose_nothing(tmp_path):
    """MLflow alone fails here: its schema set-up races (duplicate columns, half-migrated tables)."""
    uri = store_uri(tmp_path)
    ready = tmp_path / "ready"
    ready.mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, f"w{index}", str(ready), "40"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(4)
    ]
    outputs = [writer.communicate(timeout=300)[0] for writer in writers]
    for writer, output in zip(writers, outputs):
        assert writer.returncode == 0, output[-3000:]
    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as connection:
        statuses = connection.execute("select name, status from runs order by name").fetchall()
        rows = connection.execute("select count(*), count(distinct run_uuid || key || step) from metrics").fetchone()
        mode = connection.execute("pragma journal_mode").fetchone()[0]
    assert statuses == [(f"w{index}", "FINISHED") for index in range(4)]
    assert rows == (4 * 40 * 8, 4 * 40 * 8)
    assert mode == "wal"


def test_sweep_with_four_jobs_logs_every_metric_of_every_run(tmp_path, forgetlab_cache):
    (tmp_path / "r4.yaml").write_text(R4.read_text())
    steps = 6
    sweep = tmp_path / "four.yaml"
    sweep.write_text(
        f"name: four\nbase: r4.yaml\noverrides:\n{overrides_block(TINY)}  train.steps: {steps}\n  train.eval_every: 1\n"
        "grid:\n  lora.rank: [1, 2]\n  seed: [0, 1]\n"
    )
    assert not (tmp_path / "mlruns").exists()  # a new store: the sweep prepares it before its workers start
    done = forgetlab("sweep", "--config", str(sweep), "--jobs", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 finished, 0 failed" in done.stdout
    for log in (tmp_path / "mlruns" / "sweeps" / "four").glob("*.log"):
        assert "database is locked" not in log.read_text()

    database = tmp_path / "mlruns" / "mlflow.db"
    with sqlite3.connect(database) as connection:
        runs = connection.execute(
            "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'forgetlab.point' and r.status = 'FINISHED'"
        ).fetchall()
        keys = EVERY_STEP + ("train_loss",)
        logged = connection.execute(
            f"select run_uuid, key, step from metrics where key in ({', '.join('?' for _ in keys)})", keys
        ).fetchall()
    assert len(runs) == 4
    expected = {
        (run_id, key, step)
        for (run_id,) in runs
        for step in range(steps + 1)
        for key in EVERY_STEP + (("train_loss",) if step > 0 else ())
    }
    assert len(logged) == len(expected) == 4 * ((steps + 1) * len(EVERY_STEP) + steps)  # no point lost, none twice
    assert set(logged) == expected


# ---------------------------------------------------------------------------- safety


def test_ui_binds_loopback_unless_told_and_warns_when_exposed(tmp_path, capsys, monkeypatch):
    """The real command up to the server's start, with the server replaced by a recorder."""
    import signal

    started: list[list[str]] = []

    class Server:
        def __init__(self, command, env=None):
            started.append(command)

        def wait(self):
            return 0

        def poll(self):
            return 0

    from forgetlab import ui_server

    monkeypatch.setattr(ui_server, "wait_until_serving", lambda url, process: None)
    monkeypatch.setattr(ui_server, "experiment_address", lambda url, experiment: None)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "Popen", Server)
    monkeypatch.setattr(signal, "signal", lambda *args: None)

    code, out, err = invoke(["ui", "--port", "5999"], capsys, monkeypatch)
    assert code == 0 and "warning" not in err
    assert started[-1][started[-1].index("--host") + 1] == "127.0.0.1"
    assert "http://127.0.0.1:5999" in out

    code, out, err = invoke(["ui", "--host", "0.0.0.0", "--port", "5999"], capsys, monkeypatch)
    assert code == 0
    assert started[-1][started[-1].index("--host") + 1] == "0.0.0.0"
    assert "warning: binding to 0.0.0.0 makes every run in this store readable from the network" in err


def test_query_connection_cannot_write_even_past_the_statement_check(tmp_path):
    import duckdb

    from forgetlab.errors import UserError
    from forgetlab.warehouse.query import run_query
    from forgetlab.warehouse.writer import connect_read_only

    db = tmp_path / "w.duckdb"
    connection = duckdb.connect(str(db))
    connection.execute("CREATE TABLE runs AS SELECT 1 AS rank")
    connection.close()
    before = db.read_bytes()
    read_only = connect_read_only(db)
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            read_only.execute("INSERT INTO runs VALUES (2)")
    finally:
        read_only.close()
    with pytest.raises(UserError, match="read-only"):
        run_query("SELECT 1; DELETE FROM runs", db_path=db)
    assert run_query("SELECT count(*) AS n FROM runs", db_path=db).column("n").to_pylist() == [1]
    assert db.read_bytes() == before


@pytest.mark.parametrize("trust", [False, True])
def test_models_load_without_remote_code_unless_the_config_says_so(tmp_path, monkeypatch, trust):
    import transformers

    from forgetlab.config import ModelConfig
    from forgetlab.finetune.model import load_base

    calls: list[dict] = []

    class Loaded:
        pad_token = "<pad>"

        @classmethod
        def from_pretrained(cls, location, **kwargs):
            calls.append(kwargs)
            return cls()

    monkeypatch.setattr(transformers, "AutoTokenizer", Loaded)
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Loaded)
    config = ModelConfig(name=str(tmp_path), trust_remote_code=True) if trust else ModelConfig(name=str(tmp_path))
    load_base(config, progress=False)
    assert len(calls) == 2 and all(call["trust_remote_code"] is trust for call in calls)


def _calls(tree: ast.AST, attribute: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute:
            yield node


def test_every_checkpoint_and_cache_load_refuses_pickled_code():
    """torch.load (packed data caches) and Lightning's resume both load with weights_only=True."""
    loads, fits = 0, 0
    for path in (REPO / "forgetlab").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "load"):
            if isinstance(call.func.value, ast.Name) and call.func.value.id == "torch":
                loads += 1
                flags = {k.arg: k.value for k in call.keywords}
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, (
                    f"{path}:{call.lineno}"
                )
        for call in _calls(tree, "fit"):
            flags = {k.arg: k.value for k in call.keywords}
            if "ckpt_path" in flags:
                fits += 1
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, (
                    f"{path}:{call.lineno}"
                )
    assert loads >= 1 and fits >= 1


def test_secrets_never_reach_the_store(tmp_path, forgetlab_cache, capsys, monkeypatch):
    """A token in the environment, a password in a URL and a `token=` value, planted in a run's
    config and command line, a sweep's file and a fit's data and SQL, appear nowhere in the store."""
    import duckdb
    from mlflow.tracking import MlflowClient

    from forgetlab.sweeps import SweepConfig, find_or_create_parent
    from forgetlab.tracking import RetryingClient

    unique = uuid.uuid4().hex
    token, password, value = f"hfsecret{unique[:16]}", f"pw{unique[16:]}", f"tok{unique[:12]}"
    monkeypatch.setenv("HF_TOKEN", token)
    done = forgetlab(
        "run",
        "--config",
        str(R4),
        *TINY,
        "train.steps=2",
        "train.eval_every=1",
        f"tracking.run_name=lab-{token}",
        f"data.name=http://alice:{password}@127.0.0.1:5999/x",
        f"data.prompt_field=token={value}",
        "--quiet",
        cwd=tmp_path,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]

    monkeypatch.chdir(tmp_path)
    client = RetryingClient(MlflowClient(store_uri(tmp_path)))
    experiment_id = client.get_experiment_by_name("forgetlab").experiment_id
    sweep = SweepConfig(
        name="s",
        base="r4.yaml",
        grid={"lora.rank": [1]},
        overrides={
            "tracking.uri": f"http://bob:{password}@127.0.0.1:5000",
            "data.name": token,
            "data.template": f"api_key={value} {{prompt}}",
        },
    )
    find_or_create_parent(client, experiment_id, sweep, f"sweeps/{token}.yaml")

    rows = [
        f"lab-{token},r{rank},{rank},{100 * rank},{n},{3 - n / 100 - rank / 50},{2 + n / 100},{3 + n / 100 + rank / 40},0.1,4"
        for rank in (1, 2, 4)
        for n in (60, 80, 100, 120)
    ]
    (tmp_path / "points.csv").write_text(
        "dataset,run_id,rank,P,N,L_ft,L_f_hard,L_f_soft,L_f_kl,L_f_data\n" + "\n".join(rows) + "\n"
    )
    (tmp_path / "points.sql").write_text(
        f"-- from http://carol:{password}@example.org/points.csv\nSELECT * FROM read_csv('points.csv')\n"
    )
    code, out, err = invoke(
        ["fit", "--law", "linear", "--query", "points.sql", "-B", "5", "--no-validation", "--starts", "1"],
        capsys,
        monkeypatch,
    )
    assert code == 0, err[-3000:]
    assert invoke(["export", "--no-progress"], capsys, monkeypatch)[0] == 0

    store = tmp_path / "mlruns"
    connection = sqlite3.connect(store / "mlflow.db")
    try:
        texts = {"mlflow.db": "\n".join(connection.iterdump())}
    finally:
        connection.close()
    warehouse = duckdb.connect(str(store / "forgetlab.duckdb"), read_only=True)
    try:
        for (table,) in warehouse.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall():
            texts[f"forgetlab.duckdb:{table}"] = repr(warehouse.sql(f'SELECT * FROM "{table}"').fetchall())
    finally:
        warehouse.close()
    for path in store.rglob("*"):
        if path.is_file() and not path.name.startswith(("mlflow.db", "forgetlab.duckdb")):
            texts[str(path.relative_to(store))] = path.read_bytes().decode("latin-1")
    assert any(name.startswith("artifacts") and name.endswith("config.yaml") for name in texts)
    assert any(name.endswith("sweep.json") for name in texts) and any(name.endswith("fit.json") for name in texts)
    for secret in (token, password, value):
        leaks = [name for name, text in texts.items() if secret in text]
        assert not leaks, f"{secret} found in {leaks}"
    assert "lab-***" in texts["mlflow.db"] and "http://***@127.0.0.1:5999/x" in texts["mlflow.db"]
