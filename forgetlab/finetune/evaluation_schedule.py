"""When a run evaluates: step 0, every k updates, the last step, and never twice at one step.

One schedule serves the forgetting curve (curves.py) and each probe (probes/callback.py), so
both agree on what "every k" means across a resume: a run resumed at step N evaluated N before
it stopped, so N is not evaluated again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class EvaluationSchedule:
    every: Optional[int]  # None: the last step only (plus step 0 when `at_start`)
    at_start: bool = True
    last_step: int = -1  # the step last evaluated (or resumed at)

    def due_at_start(self, step: int) -> bool:
        """At the start of training: due at step 0 when `at_start`; a resumed step counts as evaluated."""
        if step > 0:
            self.last_step = step
            return False
        return self.at_start and step != self.last_step

    def due(self, step: int, max_steps: int) -> bool:
        """After an update: due every `every` updates and at the last one, once per step."""
        if step == 0 or step == self.last_step:
            return False
        return step >= max_steps or (self.every is not None and step % self.every == 0)

    def mark(self, step: int) -> None:
        self.last_step = step
