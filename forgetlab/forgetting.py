"""Forgetting metrics: how far the fine-tuned model has moved from its own base on pretraining-like text.

For every position t of the forgetting text (predicting token t+1), with p_base the base model's
next-token distribution and p_ft the fine-tuned model's:

- `forget_hard` = mean over positions of -log p_ft(argmax p_base)           (the paper's L_f, "hard" reading)
- `forget_soft` = mean of -sum_v p_base(v) log p_ft(v) = H(p_base) + KL       (the "soft" reading)
- `forget_kl`   = mean of KL(p_base || p_ft)                                    (0 before any update)
- `forget_data` = mean of -log p_ft(x_{t+1})                                    (plain LM loss on the text)
- `forget_agree`= share of positions where argmax p_ft = argmax p_base         (1 before any update)

All five come from the same two forward passes. The base pass is the same network with the
LoRA adapters disabled (PEFT `disable_adapter()`), and since the evaluation text is fixed, it is
done once per run and kept in memory when it fits (`forget.base_cache_mb`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from forgetlab.data import PackedBlocks
from forgetlab.metric_names import FORGETTING_METRICS


@dataclass
class BaseReference:
    """The base model's predictions on one batch of the forgetting text (float32 log-probs)."""

    log_probs: torch.Tensor  # [batch, positions, vocab]


def _log_probs(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities for positions 0..T-2 (each predicts the following token)."""
    logits = model(input_ids=input_ids).logits[:, :-1, :]
    return F.log_softmax(logits.float(), dim=-1)


def batch_forgetting_sums(
    ft_log_probs: torch.Tensor, base_log_probs: torch.Tensor, next_tokens: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-batch *sums* over positions of each metric's per-token quantity (averaged by the caller)."""
    base_probs = base_log_probs.exp()
    base_argmax = base_log_probs.argmax(dim=-1)
    # p_base * log p_base is 0 where p_base underflows to 0; xlogy gets that limit right.
    base_neg_entropy = torch.special.xlogy(base_probs, base_probs).sum(dim=-1)
    cross_entropy = -(base_probs * ft_log_probs).sum(dim=-1)
    return {
        "forget_hard": -ft_log_probs.gather(-1, base_argmax.unsqueeze(-1)).squeeze(-1).sum(),
        "forget_soft": cross_entropy.sum(),
        "forget_kl": (cross_entropy + base_neg_entropy).sum(),
        "forget_data": -ft_log_probs.gather(-1, next_tokens.unsqueeze(-1)).squeeze(-1).sum(),
        "forget_agree": (ft_log_probs.argmax(dim=-1) == base_argmax).float().sum(),
    }


class ForgettingEvaluator:
    """Computes the forgetting metrics of a PEFT model against its own base on fixed text."""

    def __init__(self, blocks: PackedBlocks, batch_size: int, base_cache_mb: int, vocab_size: int):
        self.batches = [blocks.input_ids[i : i + batch_size] for i in range(0, len(blocks), batch_size)]
        positions = blocks.input_ids.shape[1] - 1
        cache_bytes = len(blocks) * positions * vocab_size * 4
        self.keep_base_in_memory = cache_bytes <= base_cache_mb * 1024 * 1024
        self._base_cache: Optional[list[BaseReference]] = None

    @torch.no_grad()
    def _base_log_probs(self, model, batch_index: int, input_ids: torch.Tensor) -> torch.Tensor:
        if self._base_cache is not None:
            return self._base_cache[batch_index].log_probs.to(input_ids.device)
        with model.disable_adapter():
            return _log_probs(model, input_ids)

    @torch.no_grad()
    def prepare(self, model, device: torch.device) -> None:
        """Compute the base predictions once (adapters disabled), if they fit in memory."""
        if not self.keep_base_in_memory or self._base_cache is not None:
            return
        was_training = model.training
        model.eval()
        cache = []
        with model.disable_adapter():
            for input_ids in self.batches:
                cache.append(BaseReference(_log_probs(model, input_ids.to(device)).cpu()))
        self._base_cache = cache
        model.train(was_training)

    @torch.no_grad()
    def evaluate(self, model, device: torch.device, autocast=None) -> dict[str, float]:
        """Mean over all positions of the forgetting text of each metric in FORGETTING_METRICS."""
        was_training = model.training
        model.eval()
        totals = {name: 0.0 for name in FORGETTING_METRICS}
        count = 0
        for batch_index, input_ids in enumerate(self.batches):
            input_ids = input_ids.to(device)
            with autocast or nullcontext():
                base_log_probs = self._base_log_probs(model, batch_index, input_ids)
                ft_log_probs = _log_probs(model, input_ids)
            sums = batch_forgetting_sums(ft_log_probs, base_log_probs, input_ids[:, 1:])
            for name, value in sums.items():
                totals[name] += float(value)
            count += ft_log_probs.shape[0] * ft_log_probs.shape[1]
        model.train(was_training)
        return {name: total / count for name, total in totals.items()}


@torch.no_grad()
def held_out_loss(model, blocks: PackedBlocks, batch_size: int, device: torch.device, autocast=None) -> float:
    """L_ft: token-weighted mean next-token cross-entropy on held-out fine-tuning blocks."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        input_ids = blocks.input_ids[start : start + batch_size].to(device)
        labels = blocks.labels[start : start + batch_size].to(device)
        with autocast or nullcontext():
            logits = model(input_ids=input_ids).logits[:, :-1, :].float()
        targets = labels[:, 1:]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"))
        tokens += int((targets != -100).sum())
    model.train(was_training)
    return total / max(tokens, 1)
