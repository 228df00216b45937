"""One MLflow run: created or reopened, owned by one process, params once, metrics in batches.

Logging a metric through MLflow's SQLite store costs several milliseconds per call, a sizeable
share of a tiny model's step, so metrics are buffered and written with one `log_batch` per
evaluation. Secrets (tokens, passwords in URIs) are scrubbed from everything logged.

A run records who writes it (host and pid tags, `owner_tags`) and, with every flush, when it
last wrote (the heartbeat tag); a sweep and `--resume` read both (`liveness.run_liveness`) to
tell a live run from a dead one. On a resume the run reopens and reports the (metric, step) pairs it already
holds, so nothing is logged twice.

Only global rank 0 of a multi-device launch tracks; the other ranks get a `NullTracker`, which
takes every call and writes nothing, so no caller asks which rank it is on.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import forgetlab.tracking.names as names
from forgetlab.locations import default_artifact_root, resolve_tracking_uri, sqlite_path
from forgetlab.mlflow_ui import mark_training_experiment
from forgetlab.tracking.context import context_tags
from forgetlab.tracking.secrets import scrub_secrets
from forgetlab.tracking.store import client, get_or_create_experiment

if TYPE_CHECKING:
    from forgetlab.tracking.dataset_inputs import RunDataset

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
PARAMS_PER_BATCH = 100  # MLflow's limit on params in one log_batch
METRICS_PER_BATCH = 1000  # MLflow's limit on metrics in one log_batch
MAX_FAILURE_LENGTH = 5000


def owner_tags() -> dict[str, str]:
    """The tags that name this process as the writer of a run."""
    return {names.HOST: socket.gethostname(), names.PID: str(os.getpid())}


class RunTracker:
    """One MLflow run, created (`start`) or reopened for a resume (`resume`)."""

    def __init__(self, tracking_uri: Optional[str], experiment: str):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = client(self.tracking_uri, prepare=True)
        self.experiment_id = mark_training_experiment(self.client, self._experiment_id(experiment))
        self.run_id: Optional[str] = None
        self._buffer: list[Any] = []

    def _experiment_id(self, name: str) -> str:
        artifact_location = None
        if sqlite_path(self.tracking_uri) is not None:
            artifact_location = default_artifact_root().resolve().as_uri()
        # Create-or-get: the other runs of a sweep (or of an array job on a server) may create it at the same moment.
        return get_or_create_experiment(self.client, name, artifact_location)

    def start(self, run_name: str, tags: dict[str, str], description: Optional[str] = None) -> str:
        """Create the run, owned by this process, with MLflow's context tags and `description`; returns its id.

        The context (user, source, git commit: `context_tags`) comes first, so a caller's tag wins.
        """
        note = {names.MLFLOW_RUN_NOTE: description} if description else {}
        tags = {**context_tags(), **tags, **note, **owner_tags()}
        run = self.client.create_run(
            self.experiment_id,
            run_name=scrub_secrets(run_name),
            tags={k: scrub_secrets(str(v)) for k, v in tags.items()},
        )
        self.run_id = run.info.run_id
        return self.run_id

    def reopen(self, run_id: str) -> None:
        """Continue an existing run (resume): it becomes RUNNING again."""
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def resume(self, run_id: str) -> dict[tuple[str, int], float]:
        """Reopen `run_id`, owned by this process now; returns the values it already holds, by (metric, step)."""
        self.reopen(run_id)
        self.set_tags(owner_tags())
        return {
            (key, metric.step): metric.value
            # Every key the run has logged (curves, penalties, probes), not a list kept by hand.
            for key in self.client.get_run(run_id).data.metrics
            for metric in self.client.get_metric_history(run_id, key)
        }

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params; a None value is left out (absent, not the text "None": docs/tracking-contract.md)."""
        from mlflow.entities import Param

        entries = [
            Param(key, scrub_secrets(str(value))[:MAX_PARAM_LENGTH])
            for key, value in params.items()
            if value is not None
        ]
        for start in range(0, len(entries), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=entries[start : start + PARAMS_PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, scrub_secrets(str(value))) for key, value in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer metrics of one step; written at the next `flush`."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._buffer.extend(Metric(key, float(value), timestamp, step) for key, value in metrics.items())

    def flush(self) -> None:
        """Write buffered metrics, with a heartbeat tag that tells a sweep this run is alive."""
        from mlflow.entities import RunTag

        if self._buffer and self.run_id is not None:
            heartbeat = [RunTag(names.HEARTBEAT_MS, str(int(time.time() * 1000)))]
            for start in range(0, len(self._buffer), METRICS_PER_BATCH):
                self.client.log_batch(
                    self.run_id, metrics=self._buffer[start : start + METRICS_PER_BATCH], tags=heartbeat
                )
            self._buffer = []

    def log_inputs(self, datasets: list[RunDataset]) -> None:
        """Log the run's datasets as MLflow inputs, each once: those the run already holds (a resume) are skipped."""
        from dataclasses import replace

        from forgetlab.tracking.dataset_inputs import dataset_input, input_key

        held = {input_key(held) for held in self.client.get_run(self.run_id).inputs.dataset_inputs}
        # A name or source is user text (a label, a URL with credentials): scrubbed like every other text.
        scrubbed = [
            replace(dataset, name=scrub_secrets(dataset.name), source=scrub_secrets(dataset.source))
            for dataset in datasets
        ]
        fresh = [entry for entry in map(dataset_input, scrubbed) if input_key(entry) not in held]
        if fresh:
            self.client.log_inputs(self.run_id, datasets=fresh)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, scrub_secrets(text), artifact_file)

    def log_table(self, columns: dict[str, list], artifact_file: str) -> None:
        """An MLflow table (`mlflow.load_table` reads it; the UI compares it across runs); text cells scrubbed."""
        scrubbed = {
            key: [scrub_secrets(v) if isinstance(v, str) else v for v in values] for key, values in columns.items()
        }
        self.client.log_table(self.run_id, scrubbed, artifact_file)

    def log_file(self, path: Path, artifact_path: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_folder(self, folder: Path, artifact_path: str) -> str:
        """Log every file of `folder` under `artifact_path`; returns the artifact's URI."""
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)
        return f"{self.client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"

    def finish(self, status: str, failure: Optional[str] = None) -> None:
        self.flush()
        if failure:
            self.set_tags({names.FAILURE: failure[:MAX_FAILURE_LENGTH]})
        self.client.set_terminated(self.run_id, status=status)


class NullTracker:
    """The tracker of ranks other than 0: every call is taken and nothing is written.

    `run_id` is the id rank 0 published in the environment (`names.RUN_ID_ENV`), so checkpoints
    of every rank go to the same folder; `tracking_uri` is empty (nothing to report).
    """

    tracking_uri = ""

    def __init__(self) -> None:
        self.run_id = os.environ.get(names.RUN_ID_ENV, "")

    def resume(self, run_id: str) -> dict[tuple[str, int], float]:
        return {}

    def start(self, run_name: str, tags: dict[str, str], description: Optional[str] = None) -> str:
        return self.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def log_inputs(self, datasets: list[RunDataset]) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_table(self, columns: dict[str, list], artifact_file: str) -> None:
        pass

    def log_file(self, path: Path, artifact_path: Optional[str] = None) -> None:
        pass

    def log_folder(self, folder: Path, artifact_path: str) -> str:
        return ""

    def finish(self, status: str, failure: Optional[str] = None) -> None:
        pass


def run_tracker(tracking_uri: Optional[str], experiment: str, is_rank_zero: bool) -> RunTracker | NullTracker:
    """The run's tracker on global rank 0 (one launch is one run), a `NullTracker` elsewhere."""
    return RunTracker(tracking_uri, experiment) if is_rank_zero else NullTracker()
