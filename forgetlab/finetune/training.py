"""The Lightning side of a run: the module that fine-tunes the adapters and the batches it sees.

`LoRAFineTuning` owns the PEFT model, the loss, the optimizer and the schedule. The evaluation
of L_ft and forgetting lives in `forgetlab.finetune.curves` (a callback), so this module is only training.

Batches are a pure function of (seed, micro-batch index): sample k of the stream is element
perm_e[k mod n] with e = k // n and perm_e a permutation seeded by (seed, e). A resumed run
therefore continues with exactly the batches an uninterrupted run would have seen; the only
position to save is the step, which Lightning's checkpoint holds. Replay rows (config
`mitigation.replay`) come from a second seeded stream by the same rule (see `forgetlab.finetune.mitigations`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from forgetlab.config import MitigationConfig, TrainingConfig
from forgetlab.finetune.data import PackedBlocks
from forgetlab.finetune.mitigations import adapter_update_norm_sq, kl_to_base, replay_rows_before
from forgetlab.tracking.names import PENALTY_KL, PENALTY_L2, PENALTY_METRICS

REPLAY_SEED_SALT = 7_777_777  # the replay stream's permutations differ from the data stream's
# Keeps the replay stream's generator seeds (seed · 1_000_003 + epoch) inside torch's 64-bit range.
REPLAY_SEED_MODULUS = 2**62 // 1_000_003


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite, or the model collapsed (`forgetlab.finetune.curves`); the run is
    stopped and marked FAILED."""

    def __init__(self, step: int, value: float, what: str = ""):
        super().__init__(what or f"loss became {value} at step {step}")
        self.step = step


class BlockDataset(Dataset):
    """Training blocks; with replay blocks, indices len(blocks).. address them."""

    def __init__(self, blocks: PackedBlocks, replay: Optional[PackedBlocks] = None):
        self.blocks = blocks
        self.replay = replay

    def __len__(self) -> int:
        return len(self.blocks) + (len(self.replay) if self.replay is not None else 0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index >= len(self.blocks) and self.replay is not None:
            index -= len(self.blocks)
            return self.replay.input_ids[index], self.replay.labels[index]
        return self.blocks.input_ids[index], self.blocks.labels[index]


class TrainerPosition:
    """Micro-batches a trainer has done: its step times the micro-batches per update (read when a pass starts)."""

    def __init__(self, trainer: L.Trainer, grad_accum: int):
        self.trainer = trainer
        self.grad_accum = grad_accum

    def __call__(self) -> int:
        return self.trainer.global_step * self.grad_accum


@dataclass
class SeededBatchSampler(Sampler[list[int]]):
    """Micro-batch index lists; one Lightning epoch runs up to the next evaluation boundary.

    Where a pass starts is read from `first_micro_batch()` (in a run: a `TrainerPosition`, the
    number of micro-batches already done, from the trainer's step), never from Lightning's epoch
    counter: after a resume Lightning may replay the tail of an epoch, and the step is the one
    position that is always right.
    """

    num_examples: int
    batch_size: int
    micro_batches_per_epoch: int
    total_micro_batches: int
    seed: int
    world_size: int = 1
    rank: int = 0
    first_micro_batch: Callable[[], int] = lambda: 0
    replay_share: float = 0.0  # p; 0 = no replay, and nothing below is touched
    replay_examples: int = 0  # replay blocks, addressed as num_examples + i (see BlockDataset)

    def __post_init__(self) -> None:
        self._permutations: dict[int, torch.Tensor] = {}
        self._replay_stream: Optional[SeededBatchSampler] = None
        if self.replay_share > 0:
            if self.replay_examples <= 0:
                raise ValueError("replay_share > 0 needs replay_examples > 0")
            replay_seed = (self.seed * 1_000_003 + REPLAY_SEED_SALT) % REPLAY_SEED_MODULUS
            self._replay_stream = SeededBatchSampler(self.replay_examples, 1, 1, 0, replay_seed)

    def _permutation(self, data_epoch: int) -> torch.Tensor:
        if data_epoch not in self._permutations:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + data_epoch)
            # Keep one permutation: a stream only ever moves forward through the data.
            self._permutations = {data_epoch: torch.randperm(self.num_examples, generator=generator)}
        return self._permutations[data_epoch]

    def micro_batch(self, index: int) -> list[int]:
        """Indices of micro-batch `index` on this rank; all ranks together cover consecutive samples."""
        first = (index * self.world_size + self.rank) * self.batch_size
        rows = [
            int(self._permutation(k // self.num_examples)[k % self.num_examples])
            for k in range(first, first + self.batch_size)
        ]
        if self._replay_stream is not None:
            rows = self._with_replay(index * self.world_size + self.rank, rows)
        return rows

    def _with_replay(self, global_index: int, rows: list[int]) -> list[int]:
        """Replace the last n_g rows by replay samples floor(g·p·B) .. floor((g+1)·p·B) − 1."""
        start = replay_rows_before(global_index, self.replay_share, self.batch_size)
        stop = replay_rows_before(global_index + 1, self.replay_share, self.batch_size)
        if stop == start:
            return rows
        replay = [self.num_examples + self._replay_stream.micro_batch(k)[0] for k in range(start, stop)]
        return rows[: len(rows) - len(replay)] + replay

    def __iter__(self) -> Iterator[list[int]]:
        start = self.first_micro_batch()
        boundary = (start // self.micro_batches_per_epoch + 1) * self.micro_batches_per_epoch
        for index in range(start, min(boundary, self.total_micro_batches)):
            yield self.micro_batch(index)

    def __len__(self) -> int:
        return self.micro_batches_per_epoch


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100.

    The labels are shifted, not the logits: slicing [B, T, V] logits copies them (100 MB at a 49k
    vocabulary and 4 x 128 tokens) and makes the backward pass copy into a zeroed tensor of that size;
    the last position gets no target instead (about 2% of an update on SmolLM2, benchmarks/real_model.py).
    """
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def learning_rate_factor(step: int, train: TrainingConfig) -> float:
    """Linear warm-up to 1, then constant or cosine decay to 0 at the last step."""
    if train.warmup_steps and step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.schedule == "constant":
        return 1.0
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class LoRAFineTuning(L.LightningModule):
    """Fine-tunes the LoRA adapters of a PEFT model on packed blocks."""

    def __init__(self, model: torch.nn.Module, train: TrainingConfig, mitigation: Optional[MitigationConfig] = None):
        super().__init__()
        self.model = model
        self.train_config = train
        self.mitigation = mitigation if mitigation is not None else MitigationConfig()
        # Only the adapters are saved in checkpoints, so loading must not demand the frozen base.
        self.strict_loading = False
        self.train_loss_sum = 0.0
        self.train_loss_count = 0
        self.penalty_sums = {name: 0.0 for name in PENALTY_METRICS}
        self.penalty_count = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        input_ids, labels = batch
        logits = self.model(input_ids=input_ids).logits
        loss = causal_lm_loss(logits, labels)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(self.global_step + 1, value)
        self.train_loss_sum += value
        self.train_loss_count += 1
        self.log("loss", value, prog_bar=True, logger=False, on_step=True)
        objective = loss
        penalties = {}
        if self.mitigation.kl_to_base > 0:
            penalties[PENALTY_KL] = (self.mitigation.kl_to_base, kl_to_base(self.model, input_ids, logits))
        if self.mitigation.l2_to_base > 0:
            penalties[PENALTY_L2] = (self.mitigation.l2_to_base, adapter_update_norm_sq(self.model))
        for name, (weight, penalty) in penalties.items():
            penalty_value = float(penalty.detach())
            if not math.isfinite(penalty_value):
                raise DivergedError(self.global_step + 1, penalty_value)
            self.penalty_sums[name] += penalty_value
            objective = objective + weight * penalty
        self.penalty_count += bool(penalties)
        return objective

    def take_train_loss(self) -> float | None:
        """Mean training loss since the last call (i.e. since the last evaluation)."""
        if not self.train_loss_count:
            return None
        mean = self.train_loss_sum / self.train_loss_count
        self.train_loss_sum, self.train_loss_count = 0.0, 0
        return mean

    def take_penalties(self) -> dict[str, float]:
        """Mean of each active penalty (unscaled) since the last call, like `take_train_loss`."""
        active = {PENALTY_KL: self.mitigation.kl_to_base > 0, PENALTY_L2: self.mitigation.l2_to_base > 0}
        count = self.penalty_count
        means = {name: total / count for name, total in self.penalty_sums.items() if active[name] and count}
        self.penalty_sums, self.penalty_count = {name: 0.0 for name in PENALTY_METRICS}, 0
        return means

    def configure_optimizers(self):
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        train = self.train_config
        if train.optimizer == "adafactor":
            from transformers.optimization import Adafactor

            # The paper's optimiser with an explicit learning rate (no relative step), so schedules compare.
            optimizer = Adafactor(
                parameters,
                lr=train.lr,
                weight_decay=train.weight_decay,
                scale_parameter=False,
                relative_step=False,
                warmup_init=False,
            )
        else:
            optimizer = torch.optim.AdamW(parameters, lr=train.lr, weight_decay=train.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, train))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # Checkpoints hold the adapters, optimizer, scheduler and step, never the frozen base weights.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items() if key in trainable}
        checkpoint["forgetlab_train_loss"] = (self.train_loss_sum, self.train_loss_count)
        checkpoint["forgetlab_penalties"] = (dict(self.penalty_sums), self.penalty_count)
        checkpoint["forgetlab_rng"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_loss_sum, self.train_loss_count = checkpoint.get("forgetlab_train_loss", (0.0, 0))
        if "forgetlab_penalties" in checkpoint:
            sums, self.penalty_count = checkpoint["forgetlab_penalties"]
            self.penalty_sums.update(sums)
        if "forgetlab_rng" in checkpoint:
            torch.set_rng_state(checkpoint["forgetlab_rng"])
