"""Keeping what was trained: the adapter as an artifact of its MLflow run, resume checkpoints pruned.

At the end of a FINISHED run the PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`)
is logged under the run's `adapter/` artifact folder, so it can be evaluated, merged or shared:

    base = forgetlab.finetune.model.load_base(ModelConfig(name=<the run's model.name>)).model
    adapter = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/adapter", tracking_uri=<the run's store>)
    tuned = PeftModel.from_pretrained(base, adapter)

(the snippet in docs/runs.md, tested as written: without `tracking_uri` MLflow looks in ./mlflow.db).

With `tracking.log_merged_model` the base with the adapter merged in is logged too (`merged/`: the
model's config, safetensors weights and tokenizer), for tools that take a plain checkpoint:

    merged = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/merged", tracking_uri=<the run's store>)
    tuned = AutoModelForCausalLM.from_pretrained(merged)

A finished run cannot be resumed, so its resume checkpoints (adapters, optimizer, step) are deleted.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

ADAPTER_ARTIFACT = "adapter"
MERGED_ARTIFACT = "merged"


def save_adapter(model, tracker) -> str:
    """Log the PEFT model's adapter to the tracker's run; returns the artifact's URI ("" on ranks other than 0)."""
    with tempfile.TemporaryDirectory(prefix="forgetlab-adapter-") as folder:
        model.save_pretrained(folder)  # adapter weights and config only, never the base
        return tracker.log_folder(Path(folder), ADAPTER_ARTIFACT)


def save_merged_model(model, tokenizer, tracker) -> str:
    """Merge the adapter into the base weights and log the whole model with its tokenizer; returns the URI.

    Merging rewrites the base weights in place: call it last, when nothing else needs the PEFT model.
    """
    merged = model.merge_and_unload()
    with tempfile.TemporaryDirectory(prefix="forgetlab-merged-") as folder:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return tracker.log_folder(Path(folder), MERGED_ARTIFACT)


def prune_checkpoints(folder: Path) -> None:
    """Delete a finished run's resume checkpoints (they only serve to resume)."""
    shutil.rmtree(folder, ignore_errors=True)
