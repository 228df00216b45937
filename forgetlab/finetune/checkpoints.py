"""Resumable checkpoints: adapters, optimizer, scheduler and step, saved at evaluation boundaries.

A checkpoint is written at the end of a Lightning epoch, which forgetlab makes one evaluation
interval long, right after that evaluation's metrics were flushed to MLflow. Files are written
under a temporary name and renamed, so a kill during the write never leaves a truncated
checkpoint; the last `keep` are kept. They live in `mlruns/checkpoints/<run_id>/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import lightning as L

CHECKPOINT_GLOB = "step-*.ckpt"


def latest_checkpoint(folder: Path) -> Optional[Path]:
    candidates = sorted(folder.glob(CHECKPOINT_GLOB))
    return candidates[-1] if candidates else None


class EvaluationCheckpoint(L.Callback):
    def __init__(self, folder: Path, every_evaluations: int, keep: int = 2):
        self.folder = folder
        self.every_evaluations = every_evaluations
        self.keep = keep

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.every_evaluations <= 0 or (trainer.current_epoch + 1) % self.every_evaluations:
            return
        if trainer.global_step >= trainer.max_steps:
            return  # the run is complete; nothing left to resume
        final = self.folder / f"step-{trainer.global_step:08d}.ckpt"
        temporary = self.folder / f".step-{trainer.global_step:08d}.ckpt.partial"
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(temporary, weights_only=False)  # collective under DDP; rank 0 writes
        if trainer.is_global_zero:
            os.replace(temporary, final)
            for old in sorted(self.folder.glob(CHECKPOINT_GLOB))[: -self.keep]:
                old.unlink(missing_ok=True)
