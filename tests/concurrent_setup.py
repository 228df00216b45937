"""Processes that set up experiments, runs and a sweep parent on one store at the same moment.

`race(uri, processes, experiments, sweep_file)` starts the processes (spawned: nothing shared but
the barrier) and releases them together into each step with a `multiprocessing.Barrier`: every
process waits until all have arrived, so no sleep decides who overlaps whom. Per experiment
name, in lockstep, each process makes forgetlab's run tracker (create-or-get the experiment, tag
it for the UI), starts a run, logs its params and a data set every process shares, and finishes.
Then all race for one sweep's parent run and log a child under the parent each got.
Returns each process's outcome: "ok" or the error it died with.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

DATASET = dict(context="training", name="kjv", digest="0123456789abcdef", source="embedded:kjv", location="embedded")


def _set_up(barrier, uri: str, index: int, experiments: list[str], sweep_file: str, outcomes) -> None:
    try:
        from forgetlab.sweeps.orchestrate import close_parent, find_or_create_parent
        from forgetlab.sweeps.spec import load_sweep
        from forgetlab.tracking import RunTracker
        from forgetlab.tracking.dataset_inputs import RunDataset

        tracker = None
        for name in experiments:
            barrier.wait()
            tracker = RunTracker(uri, name)
            tracker.start(f"p{index}", {"forgetlab.kind": "run", "forgetlab.writer": str(index)})
            tracker.log_params({"writer": index, "experiment": name})
            tracker.log_inputs([RunDataset(**DATASET)])
            tracker.finish("FINISHED")
        sweep, _ = load_sweep(Path(sweep_file))
        barrier.wait()
        parent = find_or_create_parent(tracker.client, tracker.experiment_id, sweep, sweep_file)
        child = tracker.client.create_run(
            tracker.experiment_id,
            run_name=f"child{index}",
            tags={"mlflow.parentRunId": parent, "forgetlab.sweep": sweep.name},
        )
        tracker.client.set_terminated(child.info.run_id, "FINISHED")
        barrier.wait()  # every launch has its children before any closes its parent
        close_parent(tracker.client, parent, "FINISHED")
        outcomes.put((index, "ok"))
    except BaseException:
        outcomes.put((index, traceback.format_exc()[-3000:]))
        barrier.abort()  # the others stop waiting for this one


def race(uri: str, processes: int, experiments: list[str], sweep_file: str, timeout: float = 600) -> dict[int, str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes, timeout=timeout)
    outcomes = context.Queue()
    workers = [
        context.Process(target=_set_up, args=(barrier, uri, index, experiments, sweep_file, outcomes))
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    found = dict(outcomes.get(timeout=timeout) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    return found
