"""Facts about the process a run executes in: its rank, device, precision; quiet libraries."""

from __future__ import annotations

import logging
import os
import warnings

from forgetlab.config import LightningTrainerConfig, TrainingConfig
from forgetlab.utils.versions import package_versions

RECORDED_PACKAGES = ("torch", "transformers", "peft", "lightning", "mlflow", "datasets", "forgetlab")
_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*LeafSpec.*",
    ".*is_gradient_checkpointing.*",
    ".*module\\(s\\) in eval mode.*",
    ".*litlogger.*",
)


def quiet_libraries() -> None:
    """Keep the terminal to what a researcher reads: progress and the summary.

    Called after the libraries are imported: some of them set their loggers' levels on import.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import datasets
    import lightning  # noqa: F401
    import mlflow  # noqa: F401
    import transformers

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def software_versions() -> dict[str, str]:
    return package_versions(RECORDED_PACKAGES)


def wants_gpu(trainer: LightningTrainerConfig) -> bool:
    import torch

    return trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def precision(training: TrainingConfig, on_gpu: bool) -> str:
    import torch

    if training.precision != "auto":
        return training.precision
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def devices_per_node(trainer: LightningTrainerConfig) -> int:
    return trainer.devices if isinstance(trainer.devices, int) else 1


def global_rank(devices_per_node: int = 1) -> int:
    """Rank of this process in a multi-process launch, known before Lightning sets up.

    torchrun and SLURM set RANK / SLURM_PROCID before Python starts; Lightning's own launcher
    re-runs this command for the other local devices with LOCAL_RANK (and NODE_RANK) set.
    """
    for variable in ("RANK", "SLURM_PROCID", "PMI_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    if "LOCAL_RANK" in os.environ:
        return int(os.environ.get("NODE_RANK", 0)) * devices_per_node + int(os.environ["LOCAL_RANK"])
    return 0
