"""Keeping what was trained: the adapter as an artifact of its MLflow run, resume checkpoints pruned.

At the end of a FINISHED run the PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`)
is logged under the run's `adapter/` artifact folder, so it can be evaluated, merged or shared:

    base = AutoModelForCausalLM.from_pretrained(<the run's model.name>)
    tuned = PeftModel.from_pretrained(base, mlflow.artifacts.download_artifacts(f"runs:/{run_id}/adapter"))

A finished run cannot be resumed, so its resume checkpoints (adapters, optimizer, step) are deleted.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

ADAPTER_ARTIFACT = "adapter"


def save_adapter(model, tracker) -> str:
    """Log the PEFT model's adapter to the tracker's run; returns the artifact's URI ("" on ranks other than 0)."""
    with tempfile.TemporaryDirectory(prefix="forgetlab-adapter-") as folder:
        model.save_pretrained(folder)  # adapter weights and config only, never the base
        return tracker.log_folder(Path(folder), ADAPTER_ARTIFACT)


def prune_checkpoints(folder: Path) -> None:
    """Delete a finished run's resume checkpoints (they only serve to resume)."""
    shutil.rmtree(folder, ignore_errors=True)
