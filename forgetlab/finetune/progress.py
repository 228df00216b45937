"""What a person watches during a run: one bar over the update steps with the latest losses.

Lightning's own bar counts epochs, which forgetlab uses as evaluation intervals; a researcher
wants steps N out of the total and the latest L_ft and forgetting instead.
"""

from __future__ import annotations

import lightning as L

from forgetlab.tracking.names import FORGET_HARD, FORGET_KL, FT_LOSS


class StepProgress(L.Callback):
    def __init__(self, total_steps: int, description: str):
        self.total_steps = total_steps
        self.description = description
        self.bar = None
        self.latest: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total_steps,
                initial=trainer.global_step,
                desc=self.description,
                unit="step",
                dynamic_ncols=True,
            )

    def show_evaluation(self, metrics: dict[str, float]) -> None:
        """A listener of the run's metrics sink: keeps the latest losses to show beside the bar."""
        self.latest.update({key: metrics[key] for key in (FT_LOSS, FORGET_HARD, FORGET_KL) if key in metrics})

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int
    ) -> None:
        if self.bar is None:
            return
        self.bar.update(trainer.global_step - self.bar.n)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        shown = {"loss": f"{float(loss):.3f}"} if loss is not None else {}
        shown.update({key: f"{value:.3f}" for key, value in self.latest.items()})
        self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        # Closed now, not when the process exits: the line that says why the run stopped (Ctrl-C's
        # resume command, a divergence) comes after the bar instead of under a redrawn one.
        self.on_train_end(trainer, module)
