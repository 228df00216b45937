"""Multi-device runs: one launch is one MLflow run, written by global rank 0 only."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import TINY_BASE

from forgetlab.finetune.runtime import global_rank as _global_rank

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "environment, devices, expected",
    [
        ({}, 1, 0),
        ({"RANK": "3"}, 2, 3),
        ({"SLURM_PROCID": "5"}, 4, 5),
        ({"LOCAL_RANK": "1"}, 2, 1),
        ({"LOCAL_RANK": "1", "NODE_RANK": "2"}, 4, 9),
    ],
)
def test_global_rank_is_known_before_lightning_sets_up(monkeypatch, environment, devices, expected):
    for variable in ("RANK", "SLURM_PROCID", "PMI_RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(variable, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert _global_rank(devices) == expected


def test_ddp_on_two_cpu_processes_logs_one_run(workdir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forgetlab",
            "run",
            "--config",
            str(REPO / "lightning_configs" / "r4.yaml"),
            *TINY_BASE,
            "train.steps=10",
            "train.eval_every=5",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "--quiet",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("FINISHED after 10 steps") == 1  # only rank 0 reports
    with sqlite3.connect(workdir / "mlruns" / "mlflow.db") as connection:
        runs = connection.execute("select run_uuid, status from runs").fetchall()
        counts = dict(connection.execute("select key, count(*) from metrics group by key").fetchall())
        duplicated = connection.execute(
            "select count(*) from (select key, step from metrics group by key, step having count(*) > 1)"
        ).fetchone()[0]
    assert len(runs) == 1 and runs[0][1] == "FINISHED"
    assert counts["ft_loss"] == 3 and counts["forget_soft"] == 3 and counts["train_loss"] == 2
    assert duplicated == 0
