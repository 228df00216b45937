"""The forgetting curve: evaluate L_ft and forgetting at step 0 and every `eval_every` updates.

`ForgettingCurveCallback` is where each logged metric value is computed (see
`forgetlab.forgetting` for the definitions) and handed to the tracker at step N = number of
optimizer updates done. Only global rank 0 evaluates and logs, so a multi-device run is one
MLflow run with one value per step.
"""

from __future__ import annotations

import lightning as L
import torch

from forgetlab.data import PackedBlocks
from forgetlab.forgetting import ForgettingEvaluator, held_out_loss
from forgetlab.schedule import EvaluationSchedule
from forgetlab.tracking.sink import MetricsSink


class ForgettingCurveCallback(L.Callback):
    """Evaluates at the steps of its schedule; each evaluation is logged and flushed before the next update."""

    def __init__(
        self,
        evaluator: ForgettingEvaluator,
        ft_validation: PackedBlocks,
        eval_every: int,
        eval_batch_size: int,
        sink: MetricsSink,
    ):
        self.evaluator = evaluator
        self.ft_validation = ft_validation
        self.schedule = EvaluationSchedule(eval_every)
        self.eval_batch_size = eval_batch_size
        self.sink = sink
        self.latest: dict[str, float] = {}

    def _evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        step = trainer.global_step
        self.schedule.mark(step)
        if not trainer.is_global_zero:
            return
        # The factory, not one context: mixed/half precision contexts can be entered once only.
        forward_context = trainer.precision_plugin.forward_context
        metrics = {"ft_loss": held_out_loss(module.model, self.ft_validation, self.eval_batch_size, module.device, forward_context)}
        metrics.update(self.evaluator.evaluate(module.model, module.device, forward_context))
        train_loss = module.take_train_loss()
        if train_loss is not None:
            metrics["train_loss"] = train_loss
        metrics.update(module.take_penalties())  # penalty_kl / penalty_l2 of the mitigations that are on
        if trainer.optimizers:
            metrics["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.latest = metrics
        self.sink.log(metrics, step)
        self.sink.flush()  # before the checkpoint: what a checkpoint covers is already in the store

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with torch.no_grad():
                # Same precision context as every later evaluation, so step-0 KL is 0 in every precision.
                self.evaluator.prepare(module.model, module.device, trainer.precision_plugin.forward_context)
        if self.schedule.due_at_start(trainer.global_step):
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int) -> None:
        if self.schedule.due(trainer.global_step, trainer.max_steps):
            self._evaluate(trainer, module)
