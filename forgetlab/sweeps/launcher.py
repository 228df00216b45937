"""Running a sweep's points: K worker processes on one machine, each with its share of the CPU.

Each point runs in its own process, so a crash, a kill or a memory spike takes one point down,
not the sweep: on a CPU-only machine it is forked from a process that imported the training
libraries once (`warm_start`), elsewhere it is a fresh `python -m forgetlab.sweeps.worker SPEC`.
On CPU, K jobs split the cores (`torch.set_num_threads`): two processes each asking for every
core run many times slower.
With several GPUs, job slot i gets GPU i. Worker output goes to `mlruns/sweeps/<name>/<run>.log`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from forgetlab.config import LightningTrainerConfig
from forgetlab.locations import store_folder
from forgetlab.sweeps.spec import SweepConfig
from forgetlab.sweeps.state import PointState
from forgetlab.sweeps.warm_start import WarmPoint, warm_start_enabled
from forgetlab.tracking import names

TO_RUN = ("new", "rerun", "resumable")


@dataclass
class PointOutcome:
    run_name: str
    key: str
    return_code: int
    seconds: float
    log: Path


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _single_device(trainer: LightningTrainerConfig) -> bool:
    return trainer.devices in (1, "1") and trainer.num_nodes == 1 and trainer.strategy in ("auto", "single_device")


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0


def run_points(
    states: list[PointState],
    sweep: SweepConfig,
    parent_run_id: str,
    jobs: int,
    report: Callable[[str], None],
) -> list[PointOutcome]:
    """Run every point that is not done or running elsewhere; return how each ended."""
    queue = [state for state in states if state.state in TO_RUN]
    total = len(queue)
    log_folder = store_folder() / "sweeps" / sweep.name
    log_folder.mkdir(parents=True, exist_ok=True)
    gpus, threads = _gpu_count(), threads_per_job(jobs)
    active: dict[int, tuple[subprocess.Popen | WarmPoint, PointState, float, Path]] = {}
    outcomes: list[PointOutcome] = []
    try:
        while queue or active:
            free_slots = [slot for slot in range(jobs) if slot not in active]
            while queue and free_slots:
                slot = free_slots.pop(0)
                active[slot] = _launch(queue.pop(0), sweep, parent_run_id, slot, threads, gpus, log_folder)
            time.sleep(0.2)
            for slot, (process, state, started, log) in list(active.items()):
                if process.poll() is None:
                    continue
                del active[slot]
                outcome = PointOutcome(
                    state.point.run_name, state.point.key, process.returncode, time.time() - started, log
                )
                outcomes.append(outcome)
                verdict = "FINISHED" if outcome.return_code == 0 else f"FAILED (exit {outcome.return_code}, see {log})"
                report(f"[{len(outcomes)}/{total}] {state.point.run_name}: {verdict} in {outcome.seconds:.0f} s")
    except KeyboardInterrupt:
        for process, *_ in active.values():
            process.terminate()
        for process, *_ in active.values():
            process.wait(timeout=30)
        raise
    return outcomes


def _write_spec(state: PointState, sweep: SweepConfig, parent_run_id: str, threads: int, spec_file: Path) -> int:
    """Write the worker's spec; return the point's thread count."""
    config = state.point.config
    if config.train.num_threads is None:
        config = config.model_copy(update={"train": config.train.model_copy(update={"num_threads": threads})})
    spec = {
        "config": config.model_dump(mode="json"),
        "tags": {names.MLFLOW_PARENT_RUN_ID: parent_run_id, names.SWEEP: sweep.name, names.POINT: state.point.key},
        "resume_run_id": state.run_id if state.state == "resumable" else None,
    }
    # The spec holds the unscrubbed config (a tracking URI's password is needed to log): only
    # its owner may read it, and the worker deletes it once read.
    descriptor = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(spec))
    return config.train.num_threads or threads


def _launch(
    state: PointState, sweep: SweepConfig, parent_run_id: str, slot: int, threads: int, gpus: int, log_folder: Path
):
    log = log_folder / f"{state.point.run_name}.log"
    spec_file = log_folder / f"{state.point.run_name}.spec.json"
    point_threads = _write_spec(state, sweep, parent_run_id, threads, spec_file)
    point_environment = {"OMP_NUM_THREADS": str(point_threads), "MLFLOW_DISABLE_TELEMETRY": "true"}
    if gpus > 1:
        point_environment["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    if gpus == 0 and _single_device(state.point.config.trainer) and warm_start_enabled():
        return WarmPoint(spec_file, log, point_environment), state, time.time(), log
    environment = dict(os.environ, **point_environment)
    handle = open(log, "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab.sweeps.worker", str(spec_file)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    handle.close()
    return process, state, time.time(), log
