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

Both passes run under the same precision context (`forward_context`, a *factory*: Lightning's
mixed/half precision contexts can be entered once only, so each forward pass gets a fresh one),
so at step 0 the two distributions are the same numbers and KL is 0, agreement 1, in every
precision. The work over the vocabulary (log-softmax, KL) is done a bounded number of positions
at a time (`CHUNK_ELEMENTS`, whole sequences), so memory stays flat for 32k–150k vocabularies.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Optional

import torch
import torch.nn.functional as F

from forgetlab.data import PackedBlocks
from forgetlab.metric_names import FORGETTING_METRICS

ForwardContext = Callable[[], ContextManager]  # returns a fresh context for one forward pass
CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MB in float32), in whole sequences (at least one)


@dataclass
class BaseReference:
    """The base model's predictions on one batch of the forgetting text, flattened over positions."""

    probs: torch.Tensor  # [batch, positions, vocab], float32
    neg_entropy: torch.Tensor  # [batch, positions]: sum_v p log p = p·logits − logsumexp(logits), computed once
    argmax: torch.Tensor  # [batch, positions]


def _logits(model, input_ids: torch.Tensor, forward_context: ForwardContext) -> torch.Tensor:
    """Logits of positions 0..T-2 (each predicts the following token): a [batch, T-1, vocab] view, not a copy."""
    with forward_context():
        return model(input_ids=input_ids).logits[:, :-1, :]


def _chunks(logits: torch.Tensor, chunk_elements: int):
    """(start, stop) over whole sequences, about `chunk_elements` logits each: slices stay views, never copies."""
    per_sequence = logits.shape[1] * logits.shape[2]
    step = max(1, chunk_elements // max(1, per_sequence))
    return [(start, min(start + step, logits.shape[0])) for start in range(0, logits.shape[0], step)]


def _max_and_logsumexp(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row maximum and logsumexp. amax, not argmax/max: on CPU the index-returning reductions cost more
    than the rest of the metric work; torch.logsumexp allocates no shifted copy of the logits."""
    return logits.amax(dim=-1), torch.logsumexp(logits, dim=-1)


def _dot(probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Row-wise p·logits."""
    return (probs * logits).sum(dim=-1)


def base_reference(logits: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> BaseReference:
    """Base probabilities and what depends on the base alone ([batch, positions, ...]), chunk by chunk."""
    probs, neg_entropy, argmax = [], [], []
    for start, stop in _chunks(logits, chunk_elements):
        chunk = logits[start:stop].float()
        _, lse = _max_and_logsumexp(chunk)
        chunk_probs = (chunk - lse.unsqueeze(-1)).exp()
        # The same operations the fine-tuned side does (dot, then logsumexp): equal logits give KL exactly 0.
        neg_entropy.append(_dot(chunk_probs, chunk) - lse)
        argmax.append(chunk.argmax(dim=-1))  # once per run: the base is cached
        probs.append(chunk_probs)
    return BaseReference(torch.cat(probs), torch.cat(neg_entropy), torch.cat(argmax))


def batch_forgetting_sums(
    ft_logits: torch.Tensor, base: BaseReference, next_tokens: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> dict[str, torch.Tensor]:
    """Sums over positions of each metric's per-token quantity (averaged by the caller).

    `ft_logits` is [batch, positions, vocab]. With lse = logsumexp of the fine-tuned logits z,
    log p_ft = z − lse, so every metric needs only lse, the maximum, p_base·z and two gathers: a few
    passes over the vocabulary, a bounded number of sequences at a time, and no log-probability tensor.
    """
    sums = {name: torch.zeros((), dtype=torch.float64) for name in FORGETTING_METRICS}
    for start, stop in _chunks(ft_logits, chunk_elements):
        logits = ft_logits[start:stop].float()
        top, lse = _max_and_logsumexp(logits)
        probs = base.probs[start:stop].to(logits.device)
        at_base_argmax = logits.gather(-1, base.argmax[start:stop].to(logits.device).unsqueeze(-1)).squeeze(-1)
        soft = lse - _dot(probs, logits)  # cross-entropy: −Σ p_base log p_ft
        chunk_sums = {
            "forget_hard": (lse - at_base_argmax).sum(),
            "forget_soft": soft.sum(),
            "forget_kl": (soft + base.neg_entropy[start:stop].to(logits.device)).sum(),
            "forget_data": (lse - logits.gather(-1, next_tokens[start:stop].to(logits.device).unsqueeze(-1)).squeeze(-1)).sum(),
            # argmax p_ft = argmax p_base  ⇔  the base's top token has the largest fine-tuned logit (ties agree)
            "forget_agree": (at_base_argmax >= top).sum(),
        }
        for name, value in chunk_sums.items():
            sums[name] += value.double().cpu()
    return sums


class ForgettingEvaluator:
    """Computes the forgetting metrics of a PEFT model against its own base on fixed text."""

    def __init__(
        self, blocks: PackedBlocks, batch_size: int, base_cache_mb: int, vocab_size: int, chunk_elements: int = CHUNK_ELEMENTS
    ):
        self.batches = [blocks.input_ids[i : i + batch_size] for i in range(0, len(blocks), batch_size)]
        positions = blocks.input_ids.shape[1] - 1
        cache_bytes = len(blocks) * positions * vocab_size * 4
        self.keep_base_in_memory = cache_bytes <= base_cache_mb * 1024 * 1024
        self.chunk_elements = chunk_elements
        self._base_cache: Optional[list[BaseReference]] = None

    def _base(self, model, batch_index: int, input_ids: torch.Tensor, forward_context: ForwardContext) -> BaseReference:
        if self._base_cache is not None:
            return self._base_cache[batch_index]
        with model.disable_adapter():
            return base_reference(_logits(model, input_ids, forward_context), self.chunk_elements)

    @torch.no_grad()
    def prepare(self, model, device: torch.device, forward_context: ForwardContext = nullcontext) -> None:
        """Compute the base predictions once (adapters disabled), if they fit in memory.

        `forward_context` must be the one `evaluate` gets, so base and fine-tuned passes match.
        """
        if not self.keep_base_in_memory or self._base_cache is not None:
            return
        was_training = model.training
        model.eval()
        cache = []
        with model.disable_adapter():
            for input_ids in self.batches:
                reference = base_reference(_logits(model, input_ids.to(device), forward_context), self.chunk_elements)
                cache.append(BaseReference(reference.probs.cpu(), reference.neg_entropy.cpu(), reference.argmax.cpu()))
        self._base_cache = cache
        model.train(was_training)

    @torch.no_grad()
    def evaluate(self, model, device: torch.device, forward_context: ForwardContext = nullcontext) -> dict[str, float]:
        """Mean over all positions of the forgetting text of each metric in FORGETTING_METRICS."""
        was_training = model.training
        model.eval()
        totals = {name: 0.0 for name in FORGETTING_METRICS}
        count = 0
        for batch_index, input_ids in enumerate(self.batches):
            input_ids = input_ids.to(device)
            base = self._base(model, batch_index, input_ids, forward_context)
            ft_logits = _logits(model, input_ids, forward_context)
            sums = batch_forgetting_sums(ft_logits, base, input_ids[:, 1:], self.chunk_elements)
            for name, value in sums.items():
                totals[name] += float(value)
            count += ft_logits.shape[0] * ft_logits.shape[1]
        model.train(was_training)
        return {name: total / count for name, total in totals.items()}


@torch.no_grad()
def held_out_loss(
    model,
    blocks: PackedBlocks,
    batch_size: int,
    device: torch.device,
    forward_context: ForwardContext = nullcontext,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> float:
    """L_ft: token-weighted mean next-token cross-entropy on held-out fine-tuning blocks."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        input_ids = blocks.input_ids[start : start + batch_size].to(device)
        targets = blocks.labels[start : start + batch_size, 1:].to(device)
        logits = _logits(model, input_ids, forward_context)
        for first, last in _chunks(logits, chunk_elements):
            chunk = logits[first:last].float()
            total += float(F.cross_entropy(chunk.reshape(-1, chunk.shape[-1]), targets[first:last].reshape(-1), ignore_index=-100, reduction="sum"))
        tokens += int((targets != -100).sum())
    model.train(was_training)
    return total / max(tokens, 1)
