"""The forgetting curve: evaluate L_ft and forgetting at step 0 and every `eval_every` updates.

`ForgettingCurveCallback` is where each logged metric value is computed (see
`forgetlab.forgetting` for the definitions) and handed to the tracker at step N = number of
optimizer updates done. Only global rank 0 evaluates and logs, so a multi-device run is one
MLflow run with one value per step.
"""

from __future__ import annotations

from typing import Callable, Optional

import lightning as L
import torch

from forgetlab.data import PackedBlocks
from forgetlab.forgetting import ForgettingEvaluator, held_out_loss


class ForgettingCurveCallback(L.Callback):
    def __init__(
        self,
        evaluator: ForgettingEvaluator,
        ft_validation: PackedBlocks,
        eval_every: int,
        eval_batch_size: int,
        log_metrics: Callable[[dict[str, float], int], None],
        on_evaluated: Optional[Callable[[int], None]] = None,
    ):
        self.evaluator = evaluator
        self.ft_validation = ft_validation
        self.eval_every = eval_every
        self.eval_batch_size = eval_batch_size
        self.log_metrics = log_metrics
        self.on_evaluated = on_evaluated
        self.last_evaluated_step = -1
        self.latest: dict[str, float] = {}

    def _evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self.last_evaluated_step:
            return
        self.last_evaluated_step = step
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
        self.log_metrics(metrics, step)
        if self.on_evaluated is not None:
            self.on_evaluated(step)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with torch.no_grad():
                # Same precision context as every later evaluation, so step-0 KL is 0 in every precision.
                self.evaluator.prepare(module.model, module.device, trainer.precision_plugin.forward_context)
        if trainer.global_step == 0:
            self._evaluate(trainer, module)
        else:
            self.last_evaluated_step = trainer.global_step  # resumed at a step that was already evaluated

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int) -> None:
        step = trainer.global_step
        if step > 0 and (step % self.eval_every == 0 or step >= trainer.max_steps):
            self._evaluate(trainer, module)
