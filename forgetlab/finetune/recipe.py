"""One fine-tuning run as a recipe: `setup()` builds each part from its config section, `train()` runs it.

The order of `setup` matters, and each constraint is commented where it applies:
- every input check (model, layers, data, forgetting text, replay text, probes) happens before
  the MLflow run is created, so bad input never leaves a half-written run behind;
- the seed is set just before the adapters are created, so the same config and seed give the
  same adapters, batches and metric values on CPU;
- the trainer exists before the data loader, whose sampler reads where to start from the
  trainer's step (a resumed run continues with the batches an uninterrupted one would see).

`execute_run` (the entry point the CLI, the sweep and the tests call) is `setup()` then `train()`;
it returns a `RunResult`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Optional

import forgetlab.finetune.runtime as runtime
import forgetlab.tracking.names as names
from forgetlab.config import (
    DataConfig,
    ForgetConfig,
    LightningTrainerConfig,
    LoraConfig,
    MitigationConfig,
    ModelConfig,
    ProbesConfig,
    RunConfig,
    TrackingConfig,
    TrainingConfig,
    to_yaml,
)
from forgetlab.errors import RunInterrupted, UserError
from forgetlab.utils.mappings import flatten


@dataclass
class RunResult:
    """What a run reports when it ends."""

    run_id: str
    run_name: str
    status: str
    tracking_uri: str  # "" on ranks other than 0: they have nothing to report
    P: int
    steps_done: int
    first: dict[str, float] = field(default_factory=dict)  # every metric of the first evaluation
    last: dict[str, float] = field(default_factory=dict)  # each metric's latest value
    adapter_uri: str = ""  # where the trained adapter was logged (FINISHED runs, rank 0)
    merged_uri: str = ""  # where the merged model was logged (tracking.log_merged_model), else ""


def execute_run(
    config: RunConfig,
    resume_run_id: Optional[str] = None,
    extra_tags: Optional[dict[str, str]] = None,
    progress: bool = True,
    extra_callbacks: Optional[list] = None,
) -> RunResult:
    """Run one fine-tuning from `config`; returns what was logged. Raises UserError on bad input."""
    recipe = FineTuningRecipe(config, resume_run_id, extra_tags, progress, extra_callbacks)
    recipe.setup()
    return recipe.train()


@dataclass
class TextBlocks:
    """Packed blocks of a text source and the fingerprint that names them in the run's params."""

    blocks: object  # PackedBlocks
    fingerprint: str


def describe_run(config: RunConfig) -> str:
    """The run's one-line description in the MLflow UI: 'LoRA r4 on code, base embedded, 300 steps, seed 0'."""
    mitigation = config.mitigation
    parts = [
        f"LoRA r{config.lora.rank} on {config.data.label()}",
        f"base {config.model.name}",
        f"{config.train.steps} steps",
    ]
    parts.append(f"seed {config.seed}")
    on = {"replay": mitigation.replay, "KL to base": mitigation.kl_to_base, "L2 to base": mitigation.l2_to_base}
    parts.extend(f"{label} {value:g}" for label, value in on.items() if value > 0)
    return ", ".join(parts)


def _location(source: str) -> str:
    """Where a configured source is read from: 'embedded', 'local' or 'hub' (as forgetlab.finetune.data reads it)."""
    from forgetlab.finetune.data import EMBEDDED_SCHEME, SUFFIX_TO_BUILDER
    from forgetlab.utils.paths import is_local_path

    if source.startswith(EMBEDDED_SCHEME):
        return "embedded"
    return "local" if is_local_path(source, SUFFIX_TO_BUILDER) else "hub"


def _label(source: str) -> str:
    """A source's short name, derived as a data set's label is ('embedded:forget' -> 'forget', 'a/b.jsonl' -> 'b')."""
    return DataConfig(source=source).label()


class FineTuningRecipe:
    """Fine-tunes LoRA adapters and logs L_ft and forgetting per evaluation step to MLflow.

    Raises UserError on bad input, before any run exists.
    """

    def __init__(
        self,
        config: RunConfig,
        resume_run_id: Optional[str] = None,
        extra_tags: Optional[dict[str, str]] = None,
        progress: bool = True,
        extra_callbacks: Optional[list] = None,
    ):
        if config.data.name is None:
            # Record the data set's label explicitly: the warehouse and the fits group runs by it.
            config = config.model_copy(update={"data": config.data.model_copy(update={"name": config.data.label()})})
        self.config = config
        self.resume_run_id = resume_run_id
        self.extra_tags = extra_tags or {}
        self.progress = progress
        self.extra_callbacks = extra_callbacks or []

    def setup(self) -> None:
        config = self.config
        runtime.quiet_libraries()
        self._setup_threads(config.train)
        self.on_gpu = runtime.wants_gpu(config.trainer)
        self.rank = runtime.global_rank(runtime.devices_per_node(config.trainer))
        # 1. Everything that can be wrong with the input, before any run exists: first where it
        # will be written (a read-only store fails now, not after minutes of loading), then the input.
        self._check_writable(config)
        self.base = self._setup_model(config.model)
        self.data, self.validation = self._setup_data(config.data)
        self.forget_text = self._setup_forget_text(config.forget)
        self.replay_text = self._setup_replay(config.mitigation)  # None: no replay
        self.probes = self._setup_probes(config.probes)  # [] = none configured
        # 2. Adapters, seeded so the same seed gives the same initialisation.
        self.model = self._setup_adapters(config.lora)
        # 3. The tracking run (rank 0 only: one launch is one run), once the input is known good.
        self.tracker, self.metrics = self._setup_tracking(config.tracking)
        # 4. Lightning: callbacks, then the trainer, then the loader that reads the trainer's step.
        self.callbacks = self._setup_callbacks(config.train)
        self.trainer = self._setup_trainer(config.trainer)
        self.loader = self._setup_loader(config.train)

    # -- 1. input -------------------------------------------------------------------------------

    def _check_writable(self, config: RunConfig) -> None:
        """One line when the tracking store or the checkpoint folder cannot be written (rank 0 writes both)."""
        from forgetlab.locations import checkpoint_root, resolve_tracking_uri
        from forgetlab.tracking.store import check_store_writable
        from forgetlab.utils.writable import why_not_writable

        if self.rank != 0:
            return
        check_store_writable(resolve_tracking_uri(config.tracking.uri))
        problem = why_not_writable(checkpoint_root() / "run") if config.train.checkpoint_every > 0 else None
        if problem:
            raise UserError(
                f"checkpoints go to {checkpoint_root()}, which cannot be written ({problem}); "
                "run from a writable folder (or set train.checkpoint_every=0: no resume)"
            )

    def _setup_threads(self, train: TrainingConfig) -> None:
        if train.num_threads:
            import torch

            torch.set_num_threads(train.num_threads)

    def _setup_model(self, model: ModelConfig):
        from forgetlab.finetune.model import check_model_fits_config, load_base

        base = load_base(model, on_gpu=self.on_gpu, progress=self.progress)
        check_model_fits_config(base.model, self.config.lora, self.config.train.context_length)
        return base

    def _setup_data(self, data: DataConfig):
        """The fine-tuning data, and the validation blocks L_ft is measured on (the first `ft_eval_sequences`)."""
        from forgetlab.finetune.data import load_fine_tuning_data

        train = self.config.train
        devices = self.config.trainer.num_nodes * (
            self.config.trainer.devices if isinstance(self.config.trainer.devices, int) else 1
        )
        tokens_needed = (
            train.steps * train.batch_size * train.grad_accum * devices * train.context_length
        )  # sizes data.max_examples: auto
        loaded = load_fine_tuning_data(
            data, self.base.tokenizer, train.context_length, tokens_needed, progress=self.progress
        )
        validation = loaded.validation
        if len(validation) > train.ft_eval_sequences:
            keep = train.ft_eval_sequences
            validation = type(validation)(validation.input_ids[:keep], validation.labels[:keep])
        return loaded, validation

    def _setup_forget_text(self, forget: ForgetConfig) -> TextBlocks:
        from forgetlab.finetune.data import load_forget_blocks

        blocks, fingerprint = load_forget_blocks(
            forget, self.base.tokenizer, self.config.train.context_length, self.base.forget_text_path
        )
        return TextBlocks(blocks, fingerprint)

    def _setup_replay(self, mitigation: MitigationConfig) -> Optional[TextBlocks]:
        if mitigation.replay <= 0:  # p = 0 loads nothing and leaves the batches untouched
            return None
        from forgetlab.finetune.data import load_replay_blocks
        from forgetlab.finetune.model import is_embedded

        model_name = self.config.model.name
        blocks, fingerprint = load_replay_blocks(
            mitigation, self.config.forget, self.base.tokenizer, self.config.train.context_length,
            model_name if is_embedded(model_name) else None,
        )  # fmt: skip
        return TextBlocks(blocks, fingerprint)

    def _setup_probes(self, probes: ProbesConfig) -> list:
        from forgetlab.finetune.model import max_context
        from forgetlab.probes.callback import load_probes

        return load_probes(probes, self.base.tokenizer, self.config.data, self.data.kind, max_context(self.base.model))

    # -- 2. adapters ----------------------------------------------------------------------------

    def _setup_adapters(self, lora: LoraConfig):
        import lightning as L

        from forgetlab.finetune.model import apply_lora, count_trainable_parameters

        L.seed_everything(self.config.seed, workers=True, verbose=False)
        model = apply_lora(self.base.model, lora)
        self.trainable_parameters = count_trainable_parameters(model)
        return model

    # -- 3. tracking ----------------------------------------------------------------------------

    def _setup_tracking(self, tracking: TrackingConfig):
        """The run's tracker (a do-nothing one on ranks other than 0) and the sink every metric goes through."""
        from forgetlab.tracking import run_tracker
        from forgetlab.tracking.sink import MetricsSink

        tracker = run_tracker(tracking.uri, tracking.experiment, is_rank_zero=self.rank == 0)
        if self.rank != 0:
            return tracker, MetricsSink(tracker)
        if self.resume_run_id:
            already_logged = tracker.resume(self.resume_run_id)
        else:
            already_logged = {}
            tracker.start(self.config.run_name(), self._tags(), describe_run(self.config))
            tracker.log_params(self._params())
            if self.base.heldout_loss is not None:  # a measurement: a metric, absent when unknown
                tracker.log_metrics({names.BASE_HELDOUT_LOSS: self.base.heldout_loss}, step=0)
                tracker.flush()
            tracker.log_text(to_yaml(self.config), names.CONFIG_ARTIFACT)
        # On a resume too: a run stopped before its inputs were written gets them; one that has them gets nothing twice.
        tracker.log_inputs(self._datasets())
        # Processes Lightning launches for the other devices inherit the environment: they
        # learn the run id here and never open a run of their own.
        os.environ[names.RUN_ID_ENV] = tracker.run_id
        return tracker, MetricsSink(tracker, already_logged)

    def _tags(self) -> dict[str, str]:
        from forgetlab.tracking.context import source_commit

        tags = {names.KIND: "run", names.DATASET: self.data.label, names.COMMAND: " ".join(sys.argv), **self.extra_tags}
        commit = source_commit()
        if commit:
            tags[names.SOURCE_COMMIT] = commit
        return tags

    def _params(self) -> dict[str, object]:
        """The config, flattened, plus what was measured or resolved at setup (docs/tracking-contract.md)."""
        import torch

        replay = {"fingerprint.replay": self.replay_text.fingerprint} if self.replay_text else {}
        return {
            **flatten(self.config.model_dump(mode="json")),
            "P": self.trainable_parameters,
            "data.kind": self.data.kind,
            "data.train_sequences": len(self.data.train),
            "data.validation_sequences": len(self.validation),
            "fingerprint.base": self.base.fingerprint,
            "fingerprint.data": self.data.fingerprint,
            "fingerprint.validation": self.validation_fingerprint,
            "fingerprint.forget_text": self.forget_text.fingerprint,
            **replay,
            "runtime.precision": runtime.precision(self.config.train, self.on_gpu),
            "runtime.device": torch.cuda.get_device_name(0) if self.on_gpu else "cpu",
            "runtime.threads": torch.get_num_threads(),
            **{f"version.{name}": value for name, value in runtime.software_versions().items()},
        }

    @property
    def validation_fingerprint(self) -> str:
        """A digest of exactly the blocks L_ft is measured on (the first `ft_eval_sequences` of the held-out split)."""
        import hashlib

        digest = hashlib.sha256(self.validation.input_ids.cpu().numpy().tobytes())
        digest.update(self.validation.labels.cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _datasets(self) -> list:
        """The data the run reads, as MLflow dataset inputs; each digest is the `fingerprint.*` param of the same data."""
        from forgetlab.tracking.dataset_inputs import RunDataset

        data, forget, mitigation = self.config.data, self.config.forget, self.config.mitigation
        datasets = [
            RunDataset("training", self.data.label, self.data.fingerprint, data.source, _location(data.source), data.hub_config, data.train_split),
            RunDataset(
                "validation", self.data.label, self.validation_fingerprint, data.source, _location(data.source),
                data.hub_config, data.validation_split or data.train_split,
            ),
            RunDataset(
                "forgetting", _label(forget.source), self.forget_text.fingerprint, forget.source, _location(forget.source),
                forget.hub_config, forget.split,
            ),
        ]  # fmt: skip
        if self.replay_text is not None:
            source = mitigation.replay_source
            datasets.append(
                RunDataset(
                    "replay",
                    _label(source),
                    self.replay_text.fingerprint,
                    source,
                    _location(source),
                    mitigation.replay_hub_config,
                    mitigation.replay_split,
                )  # fmt: skip
            )
        return datasets

    # -- 4. Lightning ---------------------------------------------------------------------------

    def _setup_callbacks(self, train: TrainingConfig) -> list:
        """Throughput, the curve, the probes, the extras, the bar, the checkpoint: the order `callbacks.py` gives and explains."""
        from forgetlab.finetune.callbacks import in_call_order
        from forgetlab.finetune.checkpoints import EvaluationCheckpoint
        from forgetlab.finetune.curves import ForgettingCurveCallback
        from forgetlab.finetune.forgetting import ForgettingEvaluator
        from forgetlab.finetune.throughput import ThroughputCallback
        from forgetlab.locations import checkpoint_root
        from forgetlab.probes.callback import ProbeCallback

        forget = self.config.forget
        vocab_size = self.base.model.config.vocab_size
        evaluator = ForgettingEvaluator(self.forget_text.blocks, forget.batch_size, forget.base_cache_mb, vocab_size)
        if not evaluator.keep_base_in_memory and forget.base_cache_mb > 0 and self.progress:
            # Not an error (memory may be short), but it costs about twice the evaluation time: say so once.
            print(
                f"note: the base's predictions on the forgetting text need {evaluator.base_cache_needed_mb} MB, more than "
                f"forget.base_cache_mb = {forget.base_cache_mb}: each evaluation runs the base beside the model (about "
                f"2x the time); set forget.base_cache_mb={evaluator.base_cache_needed_mb} to cache them if memory allows",
                file=sys.stderr,
            )
        self.curve = ForgettingCurveCallback(
            evaluator, self.validation, train.eval_every, forget.batch_size, self.metrics
        )
        progress_bar = None
        if self.progress:
            from forgetlab.finetune.progress import StepProgress

            progress_bar = StepProgress(train.steps, self.config.run_name())
            self.metrics.listeners.append(progress_bar.show_evaluation)
        return in_call_order(
            throughput=ThroughputCallback(self.metrics.log, train.eval_every, self._system_metrics_run()),
            curve=self.curve,
            probes=ProbeCallback(self.probes, self.metrics) if self.probes else None,
            extras=self.extra_callbacks,
            progress=progress_bar,
            checkpoint=(
                EvaluationCheckpoint(checkpoint_root() / self.tracker.run_id, train.checkpoint_every)
                if train.checkpoint_every > 0 and self.tracker.run_id
                else None
            ),
        )

    def _system_metrics_run(self) -> Optional[tuple[str, str, bool]]:
        """(run id, tracking URI, resumed) for MLflow's system-metrics sampler; None when off or not rank 0."""
        if not (self.config.tracking.system_metrics and self.tracker.run_id):
            return None
        return self.tracker.run_id, self.tracker.tracking_uri, self.resume_run_id is not None

    def _setup_trainer(self, trainer: LightningTrainerConfig):
        import lightning as L

        train = self.config.train
        return L.Trainer(
            max_steps=train.steps,
            accelerator=trainer.accelerator,
            devices=trainer.devices,
            strategy=trainer.strategy,
            num_nodes=trainer.num_nodes,
            precision=runtime.precision(train, self.on_gpu),
            accumulate_grad_batches=train.grad_accum,
            gradient_clip_val=train.max_grad_norm,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            callbacks=self.callbacks,
        )

    def _setup_loader(self, train: TrainingConfig):
        from torch.utils.data import DataLoader

        from forgetlab.finetune.training import BlockDataset, SeededBatchSampler, TrainerPosition

        trainer = self.config.trainer
        replay = self.replay_text.blocks if self.replay_text else None
        sampler = SeededBatchSampler(
            num_examples=len(self.data.train),
            batch_size=train.batch_size,
            micro_batches_per_epoch=train.eval_every * train.grad_accum,
            total_micro_batches=train.steps * train.grad_accum,
            seed=self.config.seed,
            world_size=trainer.num_nodes * runtime.devices_per_node(trainer),
            rank=self.rank,
            first_micro_batch=TrainerPosition(self.trainer, train.grad_accum),
            replay_share=self.config.mitigation.replay,
            replay_examples=len(replay) if replay is not None else 0,
        )
        return DataLoader(BlockDataset(self.data.train, replay), batch_sampler=sampler)

    # -- training -------------------------------------------------------------------------------

    def train(self) -> RunResult:
        """Fit, then end the tracking run with its status; a diverged run is a UserError after it is marked FAILED."""
        from forgetlab.finetune.checkpoints import latest_checkpoint
        from forgetlab.finetune.training import DivergedError, LoRAFineTuning
        from forgetlab.locations import checkpoint_root

        self.model.train()
        module = LoRAFineTuning(self.model, self.config.train, self.config.mitigation)
        # Every rank restores the same checkpoint; only rank 0 touches the tracking run.
        resume = latest_checkpoint(checkpoint_root() / self.resume_run_id) if self.resume_run_id else None
        status, failure = "FINISHED", None
        try:
            self.trainer.fit(module, train_dataloaders=self.loader, ckpt_path=resume, weights_only=True)
        except DivergedError as error:
            status, failure = "FAILED", str(error)
        except (KeyboardInterrupt, SystemExit) as error:
            self.tracker.finish("KILLED", "interrupted")
            # Lightning turns Ctrl-C into sys.exit(1) inside its `except KeyboardInterrupt`, so the
            # interrupt is the SystemExit's context; the user needs the run id to resume, not exit 1.
            if self.tracker.tracking_uri and (
                isinstance(error, KeyboardInterrupt) or isinstance(error.__context__, KeyboardInterrupt)
            ):
                raise RunInterrupted(
                    self.tracker.run_id, self.config.run_name(), self.trainer.global_step, self.tracker.tracking_uri
                ) from None
            raise
        except BaseException as error:
            self.tracker.finish("FAILED", f"{type(error).__name__}: {error}")
            raise
        adapter_uri, merged_uri = self._keep_adapter() if status == "FINISHED" else ("", "")
        self.tracker.finish(status, failure)
        run_id = self.tracker.run_id
        if status == "FAILED":
            raise UserError(
                f"run {run_id} diverged ({failure}) and is marked FAILED; lower train.lr or keep train.max_grad_norm set"
            )
        return RunResult(
            run_id=run_id,
            run_name=self.config.run_name(),
            status=status,
            tracking_uri=self.tracker.tracking_uri,
            P=self.trainable_parameters,
            steps_done=self.trainer.global_step,
            first=dict(self.metrics.first),
            last=dict(self.metrics.last),
            adapter_uri=adapter_uri,
            merged_uri=merged_uri,
        )

    def _keep_adapter(self) -> tuple[str, str]:
        """Log the trained adapter (and, if asked, the merged model) and drop the resume checkpoints
        (a FINISHED run is never resumed)."""
        from forgetlab.finetune.adapter import prune_checkpoints, save_adapter, save_merged_model
        from forgetlab.locations import checkpoint_root

        adapter_uri, merged_uri = save_adapter(self.model, self.tracker), ""
        if self.config.tracking.log_merged_model and self.rank == 0:
            merged_uri = save_merged_model(self.model, self.base.tokenizer, self.tracker)
        if self.tracker.run_id:
            prune_checkpoints(checkpoint_root() / self.tracker.run_id)
        return adapter_uri, merged_uri
