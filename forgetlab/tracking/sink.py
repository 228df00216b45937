"""Where every metric of a run goes: one sink, shared by the curve and the probes.

It writes each (key, step) once (a resumed run already holds the steps before its checkpoint),
buffers until `flush` (one batch per evaluation, through the tracker), keeps the values of the
run's first step and the latest value of each key (the run's summary), and shows each
evaluation to its listeners (the progress bar).
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional


class MetricsSink:
    def __init__(
        self,
        tracker,
        already_logged: Optional[Mapping[tuple[str, int], float]] = None,
        listeners: Optional[list[Callable[[dict[str, float]], None]]] = None,
    ):
        self.tracker = tracker  # a RunTracker, or a NullTracker on ranks other than 0
        self.already_logged = dict(already_logged or {})  # (key, step) -> value the store holds (a resume)
        self.listeners = listeners if listeners is not None else []
        self.last: dict[str, float] = {}  # each key's latest value
        self._first_here: dict[str, float] = {}  # every value of the first step logged in this process
        self._first_step_here: Optional[int] = None

    @property
    def first(self) -> dict[str, float]:
        """Every value of the run's first step, among the keys this sink logs.

        A resumed run starts this process at its checkpoint's step; its first step (0) was logged
        by the process that was stopped, so it is read from what the store held.
        """
        # Only keys this sink logs: the store also holds MLflow's system/* samples, whose step is a sample number.
        held = {(key, step): value for (key, step), value in self.already_logged.items() if key in self.last}
        if not held:
            return dict(self._first_here)
        start = min(step for _, step in held)
        return {key: value for (key, step), value in held.items() if step == start}

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._first_step_here is None:
            self._first_step_here = step
        if step == self._first_step_here:
            self._first_here.update(metrics)
        self.last.update(metrics)
        fresh = {key: value for key, value in metrics.items() if (key, step) not in self.already_logged}
        if fresh:
            self.tracker.log_metrics(fresh, step)
        for listener in self.listeners:
            listener(metrics)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.tracker.log_text(text, artifact_file)

    def log_table(self, columns: dict[str, list], artifact_file: str) -> None:
        self.tracker.log_table(columns, artifact_file)

    def flush(self) -> None:
        """Write what is buffered; called before a checkpoint, so what it covers is in the store."""
        self.tracker.flush()
