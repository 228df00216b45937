"""The forgetting curve: evaluate L_ft and forgetting at step 0 and every `eval_every` updates.

`ForgettingCurveCallback` is where each logged metric value is computed (see
`forgetlab.finetune.forgetting` for the definitions) and handed to the tracker at step N = number of
optimizer updates done. Only global rank 0 evaluates and logs, so a multi-device run is one
MLflow run with one value per step.

A run whose model collapses is stopped there, like one whose loss becomes NaN: its held-out loss
reaches ln(vocab), the loss of predicting every token equally likely, after starting below it (at
`train.lr=1e4` the tiny base does so within 10 steps, and every forgetting metric then measures
nothing but the collapse), or becomes NaN or infinite. The evaluation that shows it is logged first.
"""

from __future__ import annotations

import math
from typing import Optional

import lightning as L
import torch

from forgetlab.finetune.data import PackedBlocks
from forgetlab.finetune.evaluation_schedule import EvaluationSchedule
from forgetlab.finetune.forgetting import ForgettingEvaluator, held_out_loss
from forgetlab.finetune.training import DivergedError
from forgetlab.tracking.names import FT_LOSS, LR, TRAIN_LOSS
from forgetlab.tracking.sink import MetricsSink

# A held-out loss within this fraction of ln(vocab) is no better than uniform predictions.
COLLAPSE_MARGIN = 0.01


def collapse(ft_loss: float, start_loss: Optional[float], vocab_size: int, step: int) -> Optional[str]:
    """Why a model whose held-out loss is `ft_loss` has collapsed (it started at `start_loss`), or None.

    A base that starts at the uniform loss (an untrained model) has nothing to collapse from.
    """
    if not math.isfinite(ft_loss):
        return f"held-out loss became {ft_loss} at step {step}"
    uniform = math.log(vocab_size)
    at_uniform = (1 - COLLAPSE_MARGIN) * uniform
    if start_loss is not None and start_loss < at_uniform <= ft_loss:
        return (
            f"the model collapsed to uniform predictions at step {step}: held-out loss {ft_loss:.4f}, "
            f"ln {vocab_size} = {uniform:.4f}, from {start_loss:.4f} at the start"
        )
    return None


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
        self.start_loss: Optional[float] = None  # ft_loss at the run's first evaluation (kept in checkpoints)

    def state_dict(self) -> dict:
        return {"start_loss": self.start_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.start_loss = state_dict.get("start_loss")

    def _evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.schedule.mark(trainer.global_step)
        failure = self._evaluate_here(trainer, module) if trainer.is_global_zero else None
        # Every rank evaluates on the same steps; rank 0's verdict stops them all together.
        failure = trainer.strategy.broadcast(failure, src=0)
        if failure:
            raise DivergedError(trainer.global_step, math.nan, failure)

    def _evaluate_here(self, trainer: L.Trainer, module: L.LightningModule) -> Optional[str]:
        """Evaluate and log on this rank; why the model has collapsed, if it has."""
        step = trainer.global_step
        # The factory, not one context: mixed/half precision contexts can be entered once only.
        forward_context = trainer.precision_plugin.forward_context
        metrics = {
            FT_LOSS: held_out_loss(
                module.model, self.ft_validation, self.eval_batch_size, module.device, forward_context
            )
        }
        metrics.update(self.evaluator.evaluate(module.model, module.device, forward_context))
        train_loss = module.take_train_loss()
        if train_loss is not None:
            metrics[TRAIN_LOSS] = train_loss
        metrics.update(module.take_penalties())  # penalty_kl / penalty_l2 of the mitigations that are on
        if trainer.optimizers:
            metrics[LR] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.latest = metrics
        self.sink.log(metrics, step)
        self.sink.flush()  # before the checkpoint: what a checkpoint covers is already in the store
        if self.start_loss is None:
            self.start_loss = metrics[FT_LOSS]
        return collapse(metrics[FT_LOSS], self.start_loss, self.evaluator.vocab_size, step)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with torch.no_grad():
                # Same precision context as every later evaluation, so step-0 KL is 0 in every precision.
                self.evaluator.prepare(module.model, module.device, trainer.precision_plugin.forward_context)
        if self.schedule.due_at_start(trainer.global_step):
            self._evaluate(trainer, module)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int
    ) -> None:
        if self.schedule.due(trainer.global_step, trainer.max_steps):
            self._evaluate(trainer, module)
