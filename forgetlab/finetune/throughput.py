"""Throughput: tokens/s, seconds per update and peak memory, logged at every evaluation step.

`ThroughputCallback` comes first among the run's callbacks (`callbacks.py`): its
`on_train_batch_end` then runs before the evaluation callbacks, so the times it reports are
training only (forward, backward, optimizer), never evaluation. Peak memory is the process's peak resident set (RSS) and, on a
GPU, torch's peak allocated memory. MLflow's system metrics (CPU, memory, disk, network; GPU with
NVML) are sampled in the background when psutil is importable.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Callable, Optional

import lightning as L
import torch

from forgetlab.tracking.names import GPU_PEAK_ALLOCATED_MB, PEAK_RSS_MB, STEP_TIME_S, TOKENS_PER_S


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def start_system_metrics(run_id: str, tracking_uri: str, resumed: bool):
    """MLflow's background system-metrics sampler for this run; None when psutil is missing."""
    try:
        import psutil  # noqa: F401
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    monitor = SystemMetricsMonitor(run_id, resume_logging=resumed, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


class ThroughputCallback(L.Callback):
    def __init__(
        self,
        log_metrics: Callable[[dict[str, float], int], None],
        eval_every: int,
        system_metrics_run: Optional[tuple[str, str, bool]] = None,  # (run id, tracking URI, resumed); None = off
    ):
        self.log_metrics = log_metrics
        self.eval_every = eval_every
        self.system_metrics_run = system_metrics_run
        self.monitor = None
        self._started = 0.0
        self._seconds = 0.0
        self._tokens = 0
        self._last_step: Optional[int] = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step
        if self.system_metrics_run is not None and trainer.is_global_zero:
            self.monitor = start_system_metrics(*self.system_metrics_run)

    def on_train_batch_start(self, trainer, module, batch, batch_index: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index: int) -> None:
        self._seconds += time.perf_counter() - self._started
        self._tokens += int(batch[0].numel()) * trainer.world_size
        step = trainer.global_step
        if step == self._last_step or not (step % self.eval_every == 0 or step >= trainer.max_steps):
            return
        updates = step - (self._last_step or 0)
        metrics = {
            TOKENS_PER_S: self._tokens / max(self._seconds, 1e-9),
            STEP_TIME_S: self._seconds / max(updates, 1),
            PEAK_RSS_MB: peak_rss_mb(),
        }
        if torch.cuda.is_available() and module.device.type == "cuda":
            metrics[GPU_PEAK_ALLOCATED_MB] = torch.cuda.max_memory_allocated(module.device) / 2**20
        if trainer.is_global_zero:
            self.log_metrics(metrics, step)
        self._seconds, self._tokens, self._last_step = 0.0, 0, step

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)
