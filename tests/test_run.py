"""Real runs of the real entry point on the tiny embedded base: what lands in the MLflow store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import R4, TINY_BASE

TINY = [
    *TINY_BASE,
    "train.lr=1e-3",
]
METRICS = ("ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree")


def forgetlab(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forgetlab", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def client(workdir: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


def history(mlflow_client, run_id: str, key: str) -> dict[int, float]:
    points = mlflow_client.get_metric_history(run_id, key)
    steps = [point.step for point in points]
    assert len(steps) == len(set(steps)), f"{key}: a step was logged twice: {sorted(steps)}"
    return {point.step: point.value for point in points}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, forgetlab_cache):
    """One real `forgetlab run` through the CLI, as a user types it."""
    workdir = tmp_path_factory.mktemp("run")
    # MLflow's system metrics sampled every 0.3 s (default 10 s) so that a run of a few seconds has some.
    result = forgetlab(
        "run", "--config", str(R4), *TINY, "train.steps=30", "train.eval_every=5", "--quiet", cwd=workdir,
        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_run_prints_id_final_losses_and_ui_command(finished_run):
    _, result = finished_run
    assert "FINISHED after 30 steps" in result.stdout
    assert "forget_hard" in result.stdout and "ft_loss" in result.stdout
    assert "forgetlab ui" in result.stdout
    assert "Traceback" not in result.stderr


def test_run_lands_in_store_with_a_curve(finished_run):
    workdir, _ = finished_run
    mlflow_client = client(workdir)
    experiment = mlflow_client.get_experiment_by_name("forgetlab")
    [run] = mlflow_client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "embedded-tiny-r4-code-s0"
    for key in METRICS:
        assert sorted(history(mlflow_client, run.info.run_id, key)) == [0, 5, 10, 15, 20, 25, 30]
    train_loss = history(mlflow_client, run.info.run_id, "train_loss")
    assert sorted(train_loss) == [5, 10, 15, 20, 25, 30]  # no training loss before any update
    for key in ("tokens_per_s", "step_time_s", "peak_rss_mb"):  # throughput, at every evaluation after step 0
        values = history(mlflow_client, run.info.run_id, key)
        assert sorted(values) == [5, 10, 15, 20, 25, 30] and all(value > 0 for value in values.values())
    kl = history(mlflow_client, run.info.run_id, "forget_kl")
    agree = history(mlflow_client, run.info.run_id, "forget_agree")
    hard = history(mlflow_client, run.info.run_id, "forget_hard")
    soft = history(mlflow_client, run.info.run_id, "forget_soft")
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and agree[0] == 1.0
    assert kl[30] > kl[0] and hard[30] > hard[0] and soft[30] > soft[0]
    ft = history(mlflow_client, run.info.run_id, "ft_loss")
    assert min(value for step, value in ft.items() if step > 0) < ft[0]  # it learned the fine-tuning data
    assert mlflow_client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")  # MLflow's sampler
    artifacts = {artifact.path for artifact in mlflow_client.list_artifacts(run.info.run_id)}
    assert "adapter" in artifacts and "merged" not in artifacts  # the merged model only when asked for


def test_run_records_what_reproduces_it(finished_run):
    workdir, _ = finished_run
    mlflow_client = client(workdir)
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("forgetlab").experiment_id])
    params = run.data.params
    assert params["lora.rank"] == "4" and params["lora.rslora"] == "True"
    assert int(params["P"]) > 0
    assert params["seed"] == "0" and params["model.name"] == "embedded-tiny"
    for key in ("fingerprint.base", "fingerprint.data", "fingerprint.forget_text", "version.torch", "version.peft", "version.lightning", "version.mlflow", "version.transformers"):
        assert params[key], key
    assert "lora.target_modules" in params and "q_proj" in params["lora.target_modules"]
    config_text = Path(mlflow_client.download_artifacts(run.info.run_id, "config.yaml", str(workdir))).read_text()
    assert "embedded-tiny" in config_text and "rank: 4" in config_text
    assert run.data.tags["forgetlab.kind"] == "run" and run.data.tags["forgetlab.dataset"] == "code"


def test_the_printed_query_command_works_in_the_runs_folder(finished_run, capsys, monkeypatch):
    """The run's closing hint names `queries/curves.sql`; typed where the run was (not the checkout), it works."""
    from cli_helpers import invoke

    workdir, result = finished_run
    assert "query queries/curves.sql" in " ".join(result.stdout.split())
    monkeypatch.chdir(workdir)
    code, out, err = invoke(["query", "queries/curves.sql", "--format", "csv"], capsys, monkeypatch)
    assert code == 0, err
    rows = out.strip().splitlines()
    assert rows[0].startswith('"dataset",') and '"forget_hard"' in rows[0]
    assert len(rows) == 1 + 7 and all("embedded-tiny-r4-code-s0" in row for row in rows[1:])  # steps 0, 5, ..., 30


def test_same_config_and_seed_give_the_same_metrics(finished_run, tmp_path, forgetlab_cache):
    workdir, _ = finished_run
    result = forgetlab("run", "--config", str(R4), *TINY, "train.steps=30", "train.eval_every=5", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = client(workdir), client(tmp_path)
    [run_a] = first.search_runs([first.get_experiment_by_name("forgetlab").experiment_id])
    [run_b] = second.search_runs([second.get_experiment_by_name("forgetlab").experiment_id])
    for key in METRICS:
        assert history(first, run_a.info.run_id, key) == history(second, run_b.info.run_id, key), key


def test_bad_input_is_one_line_exit_2_and_no_run(tmp_path, forgetlab_cache):
    """As a separate process sees it (stderr, exit code): the error found deepest, once the model is
    loaded. test_bad_inputs.py runs the whole catalogue of bad inputs in-process."""
    expected = "lora.layers: layer index 7 is out of range; the model has 2 layers"
    result = forgetlab("run", "--config", str(R4), *TINY, "lora.layers=[7]", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    # (The first use of the tiny base may print its build progress before; the error is one line.)
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr
    database = tmp_path / "mlruns" / "mlflow.db"
    assert not database.exists() or not sqlite3.connect(database).execute("select count(*) from runs").fetchone()[0]


def _ft_loss_steps(database: Path, run_name: str) -> list[int]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=1) as connection:
            rows = connection.execute(
                "select m.step from metrics m join runs r on r.run_uuid = m.run_uuid where r.name = ? and m.key = 'ft_loss'",
                (run_name,),
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [row[0] for row in rows]


def test_sigkilled_run_resumes_into_the_same_run_with_identical_values(tmp_path, forgetlab_cache):
    steps = ["train.steps=80", "train.eval_every=5"]
    twin = tmp_path / "twin"
    twin.mkdir()
    assert forgetlab("run", "--config", str(R4), *TINY, *steps, "--quiet", cwd=twin).returncode == 0

    killed = tmp_path / "killed"
    killed.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab", "run", "--config", str(R4), *TINY, *steps, "--quiet"],
        cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    database = killed / "mlruns" / "mlflow.db"
    deadline = time.time() + 240
    while time.time() < deadline and max(_ft_loss_steps(database, "embedded-tiny-r4-code-s0"), default=-1) < 15:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    logged_before_kill = max(_ft_loss_steps(database, "embedded-tiny-r4-code-s0"))
    assert 15 <= logged_before_kill < 80, "the run was not killed mid-way"

    mlflow_client = client(killed)
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("forgetlab").experiment_id])
    assert run.info.status == "RUNNING"  # SIGKILL leaves no chance to mark it
    resumed = forgetlab("run", "--resume", run.info.run_id, "--quiet", cwd=killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    twin_client = client(twin)
    [twin_run] = twin_client.search_runs([twin_client.get_experiment_by_name("forgetlab").experiment_id])
    assert mlflow_client.get_run(run.info.run_id).info.status == "FINISHED"
    assert len(mlflow_client.search_runs([run.info.experiment_id])) == 1  # resumed into the same run
    for key in METRICS + ("train_loss",):
        got = history(mlflow_client, run.info.run_id, key)
        expected = history(twin_client, twin_run.info.run_id, key)
        assert sorted(got) == sorted(expected), key
        for step, value in expected.items():
            assert got[step] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, step)


def test_the_printed_command_works_where_forgetlab_is_not_on_path(tmp_path, monkeypatch):
    # After `make run` the CLI is in .venv/bin, not on PATH: the hint must name what the user can type.
    from forgetlab.commands.run import command_name

    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "forgetlab").write_text("#!/bin/sh\n")
    (venv_bin / "forgetlab").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert command_name() == ".venv/bin/forgetlab"
    monkeypatch.setenv("PATH", str(venv_bin))
    assert command_name() == "forgetlab"
