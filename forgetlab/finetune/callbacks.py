"""The order of a run's Lightning callbacks, written once: what a run measures depends on it.

Lightning calls each hook of every callback in list order. After an update (`on_train_batch_end`):
1. throughput stops its clock first, so the update time it reports ends before any evaluation of
   the step (training only: forward, backward, optimizer);
2. the forgetting curve evaluates L_ft and forgetting, logs and flushes them; a collapsed model
   stops the run here, before a probe spends time on it;
3. the probes evaluate at the same steps, after the curve;
4. callbacks a caller adds (`execute_run(extra_callbacks=...)`, the tests' signals) see the step's
   evaluations done;
5. the progress bar shows the losses of the evaluation just made;
6. the checkpoint, at the end of an evaluation interval, comes after every evaluation of its step,
   so what it covers is already in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    import lightning as L

    from forgetlab.finetune.checkpoints import EvaluationCheckpoint
    from forgetlab.finetune.curves import ForgettingCurveCallback
    from forgetlab.finetune.progress import StepProgress
    from forgetlab.finetune.throughput import ThroughputCallback
    from forgetlab.probes.callback import ProbeCallback


def in_call_order(
    throughput: ThroughputCallback,
    curve: ForgettingCurveCallback,
    probes: Optional[ProbeCallback] = None,
    extras: Sequence[L.Callback] = (),
    progress: Optional[StepProgress] = None,
    checkpoint: Optional[EvaluationCheckpoint] = None,
) -> list[L.Callback]:
    """The run's callbacks in the order above; the parts a run does not have (None) are left out."""
    ordered = [throughput, curve, probes, *extras, progress, checkpoint]
    return [callback for callback in ordered if callback is not None]
