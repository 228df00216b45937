"""One fine-tuning run from a validated config: load, adapt, train, evaluate, track.

The order matters: everything that can be wrong with the user's input (model, layers, data,
forgetting text) is checked before the MLflow run is created, so bad input never leaves a
half-written run behind. The seed is set just before the adapters are created, so the same
config and seed give the same adapters, batches and metric values on CPU.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from forgetlab.config import RunConfig, flatten, to_yaml
from forgetlab.errors import UserError


@dataclass
class RunResult:
    run_id: str
    run_name: str
    status: str
    tracking_uri: str
    P: int
    steps_done: int
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    adapter_uri: str = ""  # where the trained adapter was logged (FINISHED runs)


def _quiet_libraries() -> None:
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
    for message in (
        ".*does not have many workers.*",
        ".*LeafSpec.*",
        ".*is_gradient_checkpointing.*",
        ".*module\\(s\\) in eval mode.*",
        ".*litlogger.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def software_versions() -> dict[str, str]:
    import importlib.metadata as metadata

    versions = {"python": sys.version.split()[0]}
    for package in ("torch", "transformers", "peft", "lightning", "mlflow", "datasets", "forgetlab"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _source_commit() -> Optional[str]:
    """forgetlab's own git commit, when it runs from a checkout (part of 'how to reproduce')."""
    try:
        here = Path(__file__).resolve().parent
        result = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _wants_gpu(config: RunConfig) -> bool:
    import torch

    return config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def _precision(config: RunConfig, on_gpu: bool) -> str:
    import torch

    if config.train.precision != "auto":
        return config.train.precision
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def _global_rank(devices_per_node: int = 1) -> int:
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


def execute_run(
    config: RunConfig,
    resume_run_id: Optional[str] = None,
    extra_tags: Optional[dict[str, str]] = None,
    progress: bool = True,
    extra_callbacks: Optional[list] = None,
) -> RunResult:
    """Run one fine-tuning from `config`; returns what was logged. Raises UserError on bad input."""
    _quiet_libraries()
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from forgetlab.checkpoints import EvaluationCheckpoint, latest_checkpoint
    from forgetlab.curves import ForgettingCurveCallback
    from forgetlab.data import load_fine_tuning_data, load_forget_blocks, load_replay_blocks
    from forgetlab.forgetting import ForgettingEvaluator
    from forgetlab.model import apply_lora, check_model_fits_config, count_trainable_parameters, is_embedded, load_base, max_context
    from forgetlab.probes.callback import ProbeCallback, load_probes
    from forgetlab.paths import checkpoint_root
    from forgetlab.tracking import RunTracker
    from forgetlab.training import BlockDataset, DivergedError, LoRAFineTuning, SeededBatchSampler

    if config.data.name is None:
        # Record the data set's label explicitly: the warehouse and the fits group runs by it.
        config = config.model_copy(update={"data": config.data.model_copy(update={"name": config.data.label()})})
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    on_gpu = _wants_gpu(config)
    train = config.train

    # 1. Everything that can be wrong with the input, before any run exists.
    base = load_base(config.model, on_gpu=on_gpu, progress=progress)
    check_model_fits_config(base.model, config.lora, train.context_length)
    devices = config.trainer.num_nodes * (config.trainer.devices if isinstance(config.trainer.devices, int) else 1)
    tokens_needed = train.steps * train.batch_size * train.grad_accum * devices * train.context_length  # sizes data.max_examples: auto
    data = load_fine_tuning_data(config.data, base.tokenizer, train.context_length, tokens_needed, progress=progress)
    forget_blocks, forget_fingerprint = load_forget_blocks(
        config.forget, base.tokenizer, train.context_length, base.forget_text_path
    )
    mitigation = config.mitigation
    replay_blocks, replay_fingerprint = None, None
    if mitigation.replay > 0:  # p = 0 loads nothing and leaves the batches untouched
        replay_blocks, replay_fingerprint = load_replay_blocks(
            mitigation, config.forget, base.tokenizer, train.context_length,
            config.model.name if is_embedded(config.model.name) else None,
        )  # fmt: skip
    probes = load_probes(config.probes, base.tokenizer, config.data, data.kind, max_context(base.model))  # [] = none configured
    validation = data.validation
    if len(validation) > train.ft_eval_sequences:
        validation = type(validation)(validation.input_ids[: train.ft_eval_sequences], validation.labels[: train.ft_eval_sequences])

    # 2. Adapters, seeded so the same seed gives the same initialisation.
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = apply_lora(base.model, config.lora)
    trainable_parameters = count_trainable_parameters(model)

    # 3. The tracking run (rank 0 only: one launch is one run).
    devices_per_node = config.trainer.devices if isinstance(config.trainer.devices, int) else 1
    global_rank = _global_rank(devices_per_node)
    is_rank_zero = global_rank == 0
    tracker = RunTracker(config.tracking.uri, config.tracking.experiment) if is_rank_zero else None
    already_logged: set[tuple[str, int]] = set()
    run_name = config.run_name()
    # Every rank restores the same checkpoint; only rank 0 touches the tracking run.
    resume_checkpoint = latest_checkpoint(checkpoint_root() / resume_run_id) if resume_run_id else None
    if tracker is not None:
        owner = {"forgetlab.host": socket.gethostname(), "forgetlab.pid": str(os.getpid())}
        if resume_run_id:
            tracker.reopen(resume_run_id)
            tracker.set_tags(owner)
            already_logged = {
                (key, metric.step)
                # Every key the run has logged (curves, penalties, probes), not a list kept by hand.
                for key in tracker.client.get_run(resume_run_id).data.metrics
                for metric in tracker.client.get_metric_history(resume_run_id, key)
            }
            run_id = resume_run_id
        else:
            tags = {
                "forgetlab.kind": "run",
                "forgetlab.dataset": data.label,
                "forgetlab.command": " ".join(sys.argv),
                **owner,
                **(extra_tags or {}),
            }
            commit = _source_commit()
            if commit:
                tags["forgetlab.source_commit"] = commit
            run_id = tracker.start(run_name, tags)
            params = flatten(config.model_dump(mode="json"))
            params.update(
                {
                    "P": trainable_parameters,
                    "data.kind": data.kind,
                    "data.train_sequences": len(data.train),
                    "data.validation_sequences": len(validation),
                    "fingerprint.base": base.fingerprint,
                    "fingerprint.data": data.fingerprint,
                    "fingerprint.forget_text": forget_fingerprint,
                    **({"fingerprint.replay": replay_fingerprint} if replay_fingerprint else {}),
                    "base.heldout_loss": base.heldout_loss if base.heldout_loss is not None else "",
                    "runtime.precision": _precision(config, on_gpu),
                    "runtime.device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
                    "runtime.threads": torch.get_num_threads(),
                }
            )
            params.update({f"version.{name}": value for name, value in software_versions().items()})
            tracker.log_params(params)
            tracker.log_text(to_yaml(config), "config.yaml")
        # Processes Lightning launches for the other devices inherit the environment: they
        # learn the run id here and never open a run of their own.
        os.environ["FORGETLAB_RUN_ID"] = run_id
    else:
        run_id = os.environ.get("FORGETLAB_RUN_ID", "")

    def log_metrics(metrics: dict[str, float], step: int) -> None:
        if tracker is None:
            return
        fresh = {key: value for key, value in metrics.items() if (key, step) not in already_logged}
        if fresh:
            tracker.log_metrics(fresh, step)

    first_metrics: dict[str, float] = {}

    def after_evaluation(step: int) -> None:
        if tracker is not None:
            tracker.flush()  # before the checkpoint: what a checkpoint covers is already in the store
        if not first_metrics:
            first_metrics.update(curve_callback.latest)
        if progress:
            progress_bar.show_evaluation(curve_callback.latest)

    # 4. Lightning.
    model.train()
    module = LoRAFineTuning(model, train, mitigation)
    world_size = config.trainer.num_nodes * (config.trainer.devices if isinstance(config.trainer.devices, int) else 1)
    sampler = SeededBatchSampler(
        num_examples=len(data.train),
        batch_size=train.batch_size,
        micro_batches_per_epoch=train.eval_every * train.grad_accum,
        total_micro_batches=train.steps * train.grad_accum,
        seed=config.seed,
        world_size=world_size,
        rank=global_rank,
        replay_share=mitigation.replay,
        replay_examples=len(replay_blocks) if replay_blocks is not None else 0,
    )
    loader = DataLoader(BlockDataset(data.train, replay_blocks), batch_sampler=sampler)
    curve_callback = ForgettingCurveCallback(
        ForgettingEvaluator(forget_blocks, config.forget.batch_size, config.forget.base_cache_mb, base.model.config.vocab_size),
        validation,
        train.eval_every,
        config.forget.batch_size,
        log_metrics,
        on_evaluated=after_evaluation,
    )
    callbacks: list = [curve_callback, *(extra_callbacks or [])]
    probe_callback = None
    if probes:  # after the curve (same steps, its metrics already flushed), before the checkpoint
        probe_callback = ProbeCallback(probes, log_metrics, tracker)
        callbacks.append(probe_callback)
    if progress:
        from forgetlab.progress import StepProgress

        progress_bar = StepProgress(train.steps, run_name)
        callbacks.append(progress_bar)
    if train.checkpoint_every > 0 and run_id:
        callbacks.append(EvaluationCheckpoint(checkpoint_root() / run_id, train.checkpoint_every))
    trainer = L.Trainer(
        max_steps=train.steps,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        strategy=config.trainer.strategy,
        num_nodes=config.trainer.num_nodes,
        precision=_precision(config, on_gpu),
        accumulate_grad_batches=train.grad_accum,
        gradient_clip_val=train.max_grad_norm,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )

    sampler.first_micro_batch = lambda: trainer.global_step * train.grad_accum
    status, failure = "FINISHED", None
    try:
        trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_checkpoint, weights_only=True)
    except DivergedError as error:
        status, failure = "FAILED", str(error)
    except (KeyboardInterrupt, SystemExit):
        status, failure = "KILLED", "interrupted"
        if tracker is not None:
            tracker.finish(status, failure)
        raise
    except BaseException as error:
        if tracker is not None:
            tracker.finish("FAILED", f"{type(error).__name__}: {error}")
        raise
    adapter_uri = ""
    if tracker is not None and status == "FINISHED":
        from forgetlab.adapter import prune_checkpoints, save_adapter

        adapter_uri = save_adapter(model, tracker)
        prune_checkpoints(checkpoint_root() / run_id)
    if tracker is not None:
        tracker.finish(status, failure)
    if status == "FAILED":
        raise UserError(
            f"run {run_id} diverged ({failure}) and is marked FAILED; lower train.lr or keep train.max_grad_norm set"
        )
    return RunResult(
        run_id=run_id,
        run_name=run_name,
        status=status,
        tracking_uri=tracker.tracking_uri if tracker is not None else "",
        P=trainable_parameters,
        steps_done=trainer.global_step,
        first={**first_metrics, **(probe_callback.first if probe_callback else {})},
        last={**curve_callback.latest, **(probe_callback.latest if probe_callback else {})},
        adapter_uri=adapter_uri,
    )
