"""Running a sweep's points: K worker processes on one machine, each with its share of the CPU.

Each point runs in its own process (`python -m forgetlab.sweep_worker SPEC`), so a crash,
a kill or a memory spike takes one point down, not the sweep. On CPU, K jobs split the cores
(`torch.set_num_threads`): two processes each asking for every core run many times slower.
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
from typing import Callable, Optional

from forgetlab.paths import resolve_tracking_uri, store_folder
from forgetlab.sweep import PointState, SweepConfig


@dataclass
class PointOutcome:
    run_name: str
    key: str
    return_code: int
    seconds: float
    log: Path


def find_or_create_parent(client, experiment_id: str, sweep: SweepConfig, source: str) -> str:
    """The parent run of a sweep: found by its tags, so rerunning the sweep reuses it."""
    from forgetlab.tracking import scrub_secrets

    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`forgetlab.kind` = 'sweep' and tags.`forgetlab.sweep` = '{sweep.name}'",
        max_results=1,
    )
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=scrub_secrets(sweep.name),
        tags={"forgetlab.kind": "sweep", "forgetlab.sweep": sweep.name, "forgetlab.sweep_file": scrub_secrets(source)},
    )
    client.log_text(run.info.run_id, scrub_secrets(sweep.model_dump_json(indent=2)), "sweep.json")
    return run.info.run_id


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


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
    pending = [state for state in states if state.state in ("new", "rerun", "resumable")]
    log_folder = store_folder() / "sweeps" / sweep.name
    log_folder.mkdir(parents=True, exist_ok=True)
    gpus = _gpu_count()
    threads = threads_per_job(jobs)
    active: dict[int, tuple[subprocess.Popen, PointState, float, Path]] = {}
    outcomes: list[PointOutcome] = []
    queue = list(pending)
    total = len(pending)
    try:
        while queue or active:
            free_slots = [slot for slot in range(jobs) if slot not in active]
            while queue and free_slots:
                slot = free_slots.pop(0)
                state = queue.pop(0)
                active[slot] = _launch(state, sweep, parent_run_id, slot, threads, gpus, log_folder)
            time.sleep(0.2)
            for slot, (process, state, started, log) in list(active.items()):
                if process.poll() is None:
                    continue
                del active[slot]
                outcome = PointOutcome(state.point.run_name, state.point.key, process.returncode, time.time() - started, log)
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


def _launch(state: PointState, sweep: SweepConfig, parent_run_id: str, slot: int, threads: int, gpus: int, log_folder: Path):
    config = state.point.config
    updates = {}
    if config.train.num_threads is None:
        updates["num_threads"] = threads
    if updates:
        config = config.model_copy(update={"train": config.train.model_copy(update=updates)})
    spec = {
        "config": config.model_dump(mode="json"),
        "tags": {
            "mlflow.parentRunId": parent_run_id,
            "forgetlab.sweep": sweep.name,
            "forgetlab.point": state.point.key,
        },
        "resume_run_id": state.run_id if state.state == "resumable" else None,
    }
    log = log_folder / f"{state.point.run_name}.log"
    spec_file = log_folder / f"{state.point.run_name}.spec.json"
    # The spec holds the unscrubbed config (a tracking URI's password is needed to log): only
    # its owner may read it, and the worker deletes it once read.
    descriptor = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(spec))
    environment = dict(os.environ, OMP_NUM_THREADS=str(config.train.num_threads or threads), MLFLOW_DISABLE_TELEMETRY="true")
    if gpus > 1:
        environment["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    handle = open(log, "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab.sweep_worker", str(spec_file)],
        stdout=handle, stderr=subprocess.STDOUT, env=environment,
    )
    handle.close()
    return process, state, time.time(), log


def tracking_client(uri: Optional[str]):
    from mlflow.tracking import MlflowClient

    from forgetlab.tracking import RetryingClient, prepare_local_store

    resolved = resolve_tracking_uri(uri)
    prepare_local_store(resolved)  # before any worker starts: tables made once, WAL on
    return RetryingClient(MlflowClient(resolved)), resolved
