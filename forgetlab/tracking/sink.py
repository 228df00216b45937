"""Where every metric of a run goes: one sink, shared by the curve and the probes.

It writes each (key, step) once (a resumed run already holds the steps before its checkpoint),
buffers until `flush` (one batch per evaluation, through the tracker), keeps the values of the
first step it saw and the latest value of each key (the run's summary), and shows each
evaluation to its listeners (the progress bar).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional


class MetricsSink:
    def __init__(
        self,
        tracker,
        already_logged: Iterable[tuple[str, int]] = (),
        listeners: Optional[list[Callable[[dict[str, float]], None]]] = None,
    ):
        self.tracker = tracker  # a RunTracker, or a NullTracker on ranks other than 0
        self.already_logged = set(already_logged)
        self.listeners = listeners if listeners is not None else []
        self.first: dict[str, float] = {}  # every value of the first step logged in this process
        self.last: dict[str, float] = {}  # each key's latest value
        self._first_step: Optional[int] = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._first_step is None:
            self._first_step = step
        if step == self._first_step:
            self.first.update(metrics)
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
