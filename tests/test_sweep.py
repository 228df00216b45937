"""Sweeps: points as child runs, skipping what is done, finishing what a kill interrupted, shards."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forgetlab.errors import UserError
from forgetlab.sweeps import load_sweep, select_shard, shard_from_slurm

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "lightning_configs" / "sweep-smoke.yaml"
STUDY = REPO / "lightning_configs" / "sweep.yaml"


def sweep(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forgetlab", "sweep", "--config", str(SMOKE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def child_runs(workdir: Path) -> list[tuple[str, str, str]]:
    """(point key, status, run id) of every point run in the store."""
    with sqlite3.connect(workdir / "mlruns" / "mlflow.db") as connection:
        return connection.execute(
            "select t.value, r.status, r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'forgetlab.point'"
        ).fetchall()


def test_sweep_runs_every_point_once_and_a_second_call_runs_nothing(workdir):
    first = sweep("--jobs", "2", cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    assert "4 finished, 0 failed" in first.stdout
    runs = child_runs(workdir)
    assert sorted(key for key, _, _ in runs) == [
        "lora.rank=1,seed=0",
        "lora.rank=1,seed=1",
        "lora.rank=2,seed=0",
        "lora.rank=2,seed=1",
    ]
    assert {status for _, status, _ in runs} == {"FINISHED"}
    with sqlite3.connect(workdir / "mlruns" / "mlflow.db") as connection:
        parents = connection.execute("select distinct value from tags where key = 'mlflow.parentRunId'").fetchall()
        sweep_runs = connection.execute(
            "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid where t.key = 'forgetlab.kind' and t.value = 'sweep'"
        ).fetchall()
    assert len(sweep_runs) == 1 and sweep_runs[0][1] == "FINISHED"
    assert parents == [(sweep_runs[0][0],)]

    # The second call: `nothing to run` comes from the store alone, so torch, Lightning and
    # transformers (seconds to import) stay out of the process.
    second = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "forgetlab", "sweep", "--config", str(SMOKE), "--jobs", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "sweep smoke: nothing to run (4 done)" in second.stdout
    assert len(child_runs(workdir)) == 4
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in second.stderr.splitlines() if line.startswith("import time:")
    }
    assert "mlflow" in imported  # the measurement works
    assert not imported & {"torch", "lightning", "transformers"}


def test_killed_sweep_is_finished_by_running_it_again(workdir):
    """Killed while its second point waits for data that never comes: where the kill lands is fixed, not timed."""
    from tiny import R4
    from tiny_checkpoints import write_text_data

    data, _ = write_text_data(workdir / "data")
    blocked = workdir / "blocked.jsonl"
    os.mkfifo(blocked)  # reading it blocks until a writer opens it: the second point cannot get past loading its data
    (workdir / "r4.yaml").write_text(R4.read_text())
    smoke = SMOKE.read_text().split("grid:")[0].replace("name: smoke", "name: killed")
    points = f"points:\n  - {{lora.rank: 1, seed: 0}}\n  - {{lora.rank: 1, seed: 1, data.source: {blocked}}}\n  - {{lora.rank: 2, seed: 0}}\n"
    (workdir / "killed.yaml").write_text(smoke + points)
    command = [sys.executable, "-m", "forgetlab", "sweep", "--config", "killed.yaml"]
    process = subprocess.Popen(
        [*command, "--jobs", "1"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Wait for a state, not for a time: the first point finished (the second then waits on the pipe for ever).
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        try:
            if any(status == "FINISHED" for _, status, _ in child_runs(workdir)):
                break
        except sqlite3.OperationalError:
            pass  # the store does not exist yet
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and the point it is running
    process.wait()
    before = {key: run_id for key, status, run_id in child_runs(workdir) if status == "FINISHED"}
    assert list(before) == ["lora.rank=1,seed=0"]

    blocked.unlink()
    blocked.write_text(data.read_text())  # the data arrives: the rerun can finish the second point
    rerun = subprocess.run([*command, "--jobs", "2"], cwd=workdir, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "1 done" in rerun.stdout
    finished = {key: run_id for key, status, run_id in child_runs(workdir) if status == "FINISHED"}
    assert len(finished) == 3
    assert finished["lora.rank=1,seed=0"] == before["lora.rank=1,seed=0"]  # the done point was not rerun
    keys = [key for key, status, _ in child_runs(workdir) if status == "FINISHED"]
    assert len(keys) == len(set(keys))


def test_a_failing_point_is_reported_with_its_log_and_the_others_finish(workdir):
    """Points fork from one warm process on a CPU machine: each still has its own exit code and log."""
    from tiny import R4, TINY_BASE, overrides_block

    (workdir / "r4.yaml").write_text(R4.read_text())
    (workdir / "diverge.yaml").write_text(
        f"name: diverge\nbase: r4.yaml\noverrides:\n{overrides_block(TINY_BASE)}  train.steps: 6\n  train.eval_every: 3\n"
        "  train.max_grad_norm: null\n  train.warmup_steps: 0\ngrid:\n  train.lr: [1.0e-3, 1.0e30]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", "sweep", "--config", "diverge.yaml", "--jobs", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 finished, 1 failed" in done.stdout and "run the same command again" in done.stdout
    assert "FAILED (exit 2, see" in done.stdout
    logs = {path.name: path.read_text() for path in (workdir / "mlruns" / "sweeps" / "diverge").glob("*.log")}
    assert len(logs) == 2
    [failed_log] = [text for text in logs.values() if "error:" in text]
    assert "diverged (loss became nan at step" in failed_log and "Traceback" not in failed_log, failed_log
    statuses = sorted(status for _, status, _ in child_runs(workdir))
    assert statuses == ["FAILED", "FINISHED"]


def test_shards_together_cover_every_point_exactly_once():
    _, points = load_sweep(STUDY)
    shards = [select_shard(points, f"{index}/3") for index in (1, 2, 3)]
    keys = [point.key for shard in shards for point in shard]
    assert sorted(keys) == sorted(point.key for point in points)
    assert len(keys) == len(set(keys))
    halves = select_shard(points, "1/2") + select_shard(points, "2/2")
    assert sorted(p.key for p in halves) == sorted(p.key for p in points)


def test_study_sweep_is_a_law_sized_grid():
    _, points = load_sweep(STUDY)
    ranks = {p.config.lora.rank for p in points}
    datasets = {p.config.data.source for p in points}
    seeds = {p.config.seed for p in points}
    assert len(ranks) >= 6 and min(ranks) == 1 and max(ranks) == 64
    assert len(datasets) >= 2 and len(seeds) >= 2
    assert all(p.config.train.steps > 50 for p in points)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: s\nbase: r4.yaml\ngrid: {}\n", "the sweep has no points"),
        ("name: s\nbase: r4.yaml\ngrid:\n  lora.rank: []\n", "'lora.rank' has no values"),
        ("name: s\nbase: r4.yaml\ngird:\n  lora.rank: [1]\n", "gird: unknown key"),
        ("name: s\nbase: r4.yaml\ngrid:\n  lora.rnak: [1]\n", "unknown key 'lora.rnak'"),
        ("name: s\nbase: r4.yaml\npoints:\n  - {lora.rank: 2}\n  - {lora.rank: 2}\n", "duplicates point 1"),
        ("name: s\nbase: missing.yaml\ngrid:\n  lora.rank: [1]\n", "base: 'missing.yaml' not found"),
        ("name: s\nbase: r4.yaml\ngrid:\n  lora.rank: [0]\n", "lora.rank: Input should be greater than 0"),
    ],
)
def test_bad_sweep_file_is_one_clear_error(tmp_path, text, expected):
    (tmp_path / "r4.yaml").write_text((REPO / "lightning_configs" / "r4.yaml").read_text())
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_sweep(path)


def test_bad_shard_is_rejected():
    with pytest.raises(UserError, match="expected i/n"):
        select_shard([], "3/2")


@pytest.mark.parametrize(
    "environment, expected",
    [
        ({}, None),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}, "1/4"),
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, "4/4"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "14",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "10",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            "3/4",
        ),
        ({"SLURM_JOB_ID": "7"}, None),  # a plain job, not an array
    ],
)
def test_shard_defaults_to_the_slurm_array_task(environment, expected):
    assert shard_from_slurm(environment) == expected


def test_dry_run_inside_a_slurm_array_lists_only_that_tasks_shard(workdir, capsys, monkeypatch):
    from cli_helpers import invoke

    for name, value in {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"}.items():
        monkeypatch.setenv(name, value)
    code, out, err = invoke(["sweep", "--config", str(STUDY), "--dry-run"], capsys, monkeypatch)
    assert code == 0, err
    _, points = load_sweep(STUDY)
    shard = select_shard(points, "2/3")
    assert f"{len(shard)} points (shard 2/3, from the SLURM array task)" in out
    assert f"{len(shard)} new" in out
    assert all(point.run_name in out for point in shard)
    assert not any(point.run_name in out for point in select_shard(points, "1/3"))

    code, out, _ = invoke(["sweep", "--config", str(STUDY), "--dry-run", "--shard", "1/3"], capsys, monkeypatch)
    assert code == 0 and "(shard 1/3)" in out  # an explicit --shard wins


def test_launches_that_race_for_the_parent_keep_one(tmp_path, monkeypatch):
    # Two array tasks start together: both search, find no parent, both create one. The later one
    # must see the earlier parent, delete its own and use the earlier one.
    from forgetlab import tracking
    from forgetlab.sweeps import orchestrate

    client = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}", prepare=True)
    experiment_id = client.create_experiment("race")
    sweep_config, _ = load_sweep(SMOKE)
    first = orchestrate.find_or_create_parent(client, experiment_id, sweep_config, str(SMOKE))
    real_search = orchestrate._sweep_parents
    calls = []

    def blind_first_search(*args):
        calls.append(1)
        return [] if len(calls) == 1 else real_search(*args)  # the other task's parent not yet visible

    monkeypatch.setattr(orchestrate, "_sweep_parents", blind_first_search)
    second = orchestrate.find_or_create_parent(client, experiment_id, sweep_config, str(SMOKE))
    assert second == first
    active = client.search_runs([experiment_id], filter_string="tags.`forgetlab.kind` = 'sweep'")
    assert [run.info.run_id for run in active] == [first]
