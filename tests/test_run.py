"""Real runs of the real entry point on the tiny embedded base: what lands in the MLflow store."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import R4, TINY_BASE

TINY = [
    *TINY_BASE,
    "train.lr=1e-3",
]
METRICS = ("ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree")


# Only a guard against a hung process, far above any run here: a loaded 2-core machine took 175 s for a 10-step run.
TIMEOUT_S = 900


def forgetlab(
    *args: str, cwd: Path, timeout: float = TIMEOUT_S, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
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
    result = forgetlab(
        "run", "--config", str(R4), *TINY, "train.steps=30", "train.eval_every=5", "--quiet", cwd=workdir
    )
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
    for key in (
        "fingerprint.base",
        "fingerprint.data",
        "fingerprint.forget_text",
        "version.torch",
        "version.peft",
        "version.lightning",
        "version.mlflow",
        "version.transformers",
    ):
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
    result = forgetlab(
        "run", "--config", str(R4), *TINY, "train.steps=30", "train.eval_every=5", "--quiet", cwd=tmp_path
    )
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


SIGNAL_AT_STEP = Path(__file__).resolve().parent / "signal_at_step.py"


def signalled_run(signal_name: str, step: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`forgetlab run ARGS` that gets SIG<signal_name> once it has done `step` updates (tests/signal_at_step.py)."""
    return subprocess.run(
        [sys.executable, str(SIGNAL_AT_STEP), signal_name, str(step), "run", *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip


def summary_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The summary table `forgetlab run` prints: metric -> (value at step 0, value at the last step), as printed."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]
        if len(cells) == 3 and cells[0] in METRICS:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_sigkilled_run_resumes_into_the_same_run_with_identical_values(tmp_path, forgetlab_cache):
    steps = ["train.steps=80", "train.eval_every=5"]
    twin = tmp_path / "twin"
    twin.mkdir()
    assert forgetlab("run", "--config", str(R4), *TINY, *steps, "--quiet", cwd=twin).returncode == 0

    killed = tmp_path / "killed"
    killed.mkdir()
    # SIGKILL once step 15 is evaluated and checkpointed: where it lands does not depend on the machine's speed.
    done = signalled_run("KILL", 15, "--config", str(R4), *TINY, *steps, "--quiet", cwd=killed)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    mlflow_client = client(killed)
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("forgetlab").experiment_id])
    assert max(history(mlflow_client, run.info.run_id, "ft_loss")) == 15
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

    # The resumed run's summary: the run's own step 0 (logged before the kill), not the step it resumed at.
    assert "step 0" in resumed.stdout and "step 80" in resumed.stdout
    rows = summary_rows(resumed.stdout)
    assert set(rows) == set(METRICS) - {"forget_data"}
    for key, (first, last) in rows.items():
        expected = history(twin_client, twin_run.info.run_id, key)
        assert (first, last) == (f"{expected[0]:.4f}", f"{expected[80]:.4f}"), key


def test_ctrl_c_prints_the_run_id_and_the_command_that_resumes_it(tmp_path, forgetlab_cache, monkeypatch):
    done = signalled_run(
        "INT", 10, "--config", str(R4), *TINY, "train.steps=20", "train.eval_every=5", "--quiet", cwd=tmp_path
    )
    assert done.returncode == 130, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    mlflow_client = client(tmp_path)
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("forgetlab").experiment_id])
    assert run.info.status == "KILLED"
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    from forgetlab.commands.run import command_name

    monkeypatch.chdir(tmp_path)  # where the command was printed (the venv's forgetlab is named relative to it)
    command = f"{command_name()} run --resume {run.info.run_id}"
    assert (
        line
        == f"run embedded-tiny-r4-code-s0 {run.info.run_id} interrupted at step 10; it is marked KILLED. Resume it with: {command}"
    )

    # The query the resume error points at lists it, with the same command.
    listed = forgetlab("query", "queries/unfinished.sql", "--format", "csv", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    [header, row] = list(csv.reader(io.StringIO(listed.stdout)))
    found = dict(zip(header, row))
    assert (found["run_id"], found["status"], found["last_step"]) == (run.info.run_id, "KILLED", "10")
    assert found["resume_command"] == f"forgetlab run --resume {run.info.run_id}"

    # The printed command, typed as printed, finishes the run.
    resumed = subprocess.run(
        [*shlex.split(line.split("Resume it with: ")[1]), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert mlflow_client.get_run(run.info.run_id).info.status == "FINISHED"
    assert sorted(history(mlflow_client, run.info.run_id, "ft_loss")) == [0, 5, 10, 15, 20]


def test_the_run_starts_and_stops_mlflows_system_metrics_sampler(workdir, monkeypatch):
    """MLflow samples system/* metrics in its own thread, every 10 s; whether a sample lands within a
    run depends on the machine's speed. What forgetlab owns is deterministic: it starts the sampler
    for its run and stops it at the end."""
    import mlflow.system_metrics.system_metrics_monitor as monitors

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    calls = []

    class RecordingMonitor:
        def __init__(self, run_id, resume_logging=False, tracking_uri=None, **_):
            calls.append(("created", run_id, resume_logging, tracking_uri))

        def start(self):
            calls.append(("started",))

        def finish(self):
            calls.append(("finished",))

    monkeypatch.setattr(monitors, "SystemMetricsMonitor", RecordingMonitor)
    result = execute_run(load_run_config(R4, [*TINY, "train.steps=2", "train.eval_every=1"]), progress=False)
    assert calls == [("created", result.run_id, False, result.tracking_uri), ("started",), ("finished",)]


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


def test_the_summary_prints_what_a_user_copies_on_one_line_at_any_width():
    """rich wrapped the adapter's URI and "FINISHED after 10 steps, / P=..." at the terminal's width; pasted, they broke."""
    from rich.console import Console

    from forgetlab.commands.run import print_summary
    from forgetlab.finetune.recipe import RunResult

    folder = "/home/someone/projects/a-rather-long-folder-name/mlruns"
    result = RunResult(
        run_id="0123456789abcdef0123456789abcdef", run_name="embedded-tiny-r4-code-s0", status="FINISHED",
        tracking_uri=f"sqlite:///{folder}/mlflow.db", P=123_456, steps_done=10,
        first={"ft_loss": 5.0}, last={"ft_loss": 4.0},
        adapter_uri=f"file://{folder}/artifacts/1/0123456789abcdef0123456789abcdef/artifacts/adapter",
        merged_uri=f"file://{folder}/artifacts/1/0123456789abcdef0123456789abcdef/artifacts/merged",
    )  # fmt: skip
    console = Console(record=True, width=40, force_terminal=True)
    print_summary(result, console)
    lines = console.export_text().splitlines()
    expected = [
        "run embedded-tiny-r4-code-s0 0123456789abcdef0123456789abcdef: FINISHED after 10 steps, P=123,456",
        f"tracking store: {result.tracking_uri}",
        f"adapter: {result.adapter_uri}",
        f"merged model: {result.merged_uri}",
    ]
    assert all(line in lines for line in expected), "\n".join(lines)
