"""Forgetting metrics: how far the fine-tuned model has moved from its own base on pretraining-like text.

For every position t of the forgetting text (predicting token t+1), with p_base the base model's
next-token distribution and p_ft the fine-tuned model's:

- `forget_hard` = mean over positions of -log p_ft(argmax p_base)           (the paper's L_f, "hard" reading)
- `forget_soft` = mean of -sum_v p_base(v) log p_ft(v) = H(p_base) + KL       (the "soft" reading)
- `forget_kl`   = mean of KL(p_base || p_ft)                                    (0 before any update)
- `forget_data` = mean of -log p_ft(x_{t+1})                                    (plain LM loss on the text)
- `forget_agree`= mean over positions of |T_ft ∩ T_base| / |T_ft ∪ T_base|, T the set of tokens at a
                  model's highest probability: 1 where both have the same unique top token, 0 where their
                  top tokens differ, and a fraction where there are ties (1 before any update; a model
                  collapsed to uniform predictions scores |T_base| / vocab, about 1/vocab, not 1)

All five come from the same two forward passes. The base pass is the same network with the
LoRA adapters disabled (PEFT `disable_adapter()`), and since the evaluation text is fixed, it is
done once per run and kept in memory when it fits (`forget.base_cache_mb`).

Both passes run under the same precision context (`forward_context`, a *factory*: Lightning's
mixed/half precision contexts can be entered once only, so each forward pass gets a fresh one),
so at step 0 the two distributions are the same numbers and KL is 0, agreement 1, in every
precision. The work over the vocabulary (log-softmax, KL) is done a bounded number of positions
at a time (`CHUNK_ELEMENTS`: whole sequences, or a few positions of one), so memory stays flat for
32k–150k vocabularies and, on a CPU, each chunk stays in cache while it is worked on.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Optional

import torch

from forgetlab.finetune.data import PackedBlocks
from forgetlab.tracking.names import FORGET_AGREE, FORGET_DATA, FORGET_HARD, FORGET_KL, FORGET_SOFT, FORGETTING_METRICS

ForwardContext = Callable[[], ContextManager]  # returns a fresh context for one forward pass

# Logits per chunk of the vocabulary work. On a CPU a chunk of 4 MB (float32) stays in cache while
# the few passes over it run (log-softmax, max, dot): faster than 16 MB chunks at 8k-32k vocabularies.
# On a GPU larger chunks mean fewer kernel launches.
CHUNK_ELEMENTS = 1 << 20
GPU_CHUNK_ELEMENTS = 1 << 24

ChunkKey = (
    tuple  # an index into [batch, positions, ...] tensors: (slice of sequences,) or (sequence, slice of positions)
)


def chunk_elements_for(device: torch.device) -> int:
    return GPU_CHUNK_ELEMENTS if device.type == "cuda" else CHUNK_ELEMENTS


@dataclass
class BaseReference:
    """The base model's predictions on one batch of the forgetting text, [batch, positions, ...]."""

    probs: torch.Tensor  # [batch, positions, vocab], float32
    neg_entropy: torch.Tensor  # [batch, positions]: sum_v p log p, computed once
    argmax: torch.Tensor  # [batch, positions]
    top_count: torch.Tensor  # [batch, positions]: how many tokens share the highest probability (1 but for ties)


def _logits(model, input_ids: torch.Tensor, forward_context: ForwardContext) -> torch.Tensor:
    """Logits of every position, [batch, T, vocab]: position t predicts token t+1, the last one nothing."""
    with forward_context():
        return model(input_ids=input_ids).logits


def _chunks(logits: torch.Tensor, chunk_elements: int) -> list[ChunkKey]:
    """Keys into the predicting positions 0..T-2 of [batch, T, vocab] logits, about `chunk_elements` each:
    whole sequences when one fits, else runs of positions within one sequence (a 150k vocabulary: a
    few positions at a time)."""
    sequences, positions, vocab = logits.shape[0], logits.shape[1] - 1, logits.shape[2]
    rows = max(1, chunk_elements // max(1, vocab))
    if rows >= positions:
        step = rows // max(1, positions)
        return [(slice(start, min(start + step, sequences)),) for start in range(0, sequences, step)]
    return [
        (sequence, slice(first, min(first + rows, positions)))
        for sequence in range(sequences)
        for first in range(0, positions, rows)
    ]


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax in float32: one fused pass over each row (max, exp-sum, subtract) that also upcasts
    bf16/fp16 logits without a copy; 20-25% less work than max, logsumexp and a shifted copy apart."""
    return torch.log_softmax(logits, dim=-1, dtype=torch.float32)


def _chunk_log_probs(logits: torch.Tensor, key: ChunkKey) -> torch.Tensor:
    """Log-probabilities of the positions `key` selects from [batch, T, vocab] logits. Whole sequences are
    computed at every position, the last (which predicts nothing) dropped after: their memory is then
    contiguous, and log_softmax does not copy the chunk first (a quarter of the metric work on small models)."""
    if len(key) == 1:
        return _log_probs(logits[key])[:, :-1]
    return _log_probs(logits[key])


def _dot(probs: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Row-wise p·log q (on a CPU a product then a sum: the chunk-sized product stays in cache)."""
    return torch.linalg.vecdot(probs, log_probs)


def _at(log_probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_probs[..., index] for one index per row."""
    return log_probs.gather(-1, index.to(log_probs.device).unsqueeze(-1)).squeeze(-1)


def base_reference(logits: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> BaseReference:
    """Base probabilities and what depends on the base alone ([batch, positions, ...]), chunk by chunk."""
    sequences, positions, vocab = logits.shape[0], logits.shape[1] - 1, logits.shape[2]
    probs = torch.empty((sequences, positions, vocab), dtype=torch.float32, device=logits.device)
    neg_entropy = torch.empty((sequences, positions), dtype=torch.float32, device=logits.device)
    argmax = torch.empty((sequences, positions), dtype=torch.long, device=logits.device)
    top_count = torch.empty((sequences, positions), dtype=torch.long, device=logits.device)
    for key in _chunks(logits, chunk_elements):
        log_probs = _chunk_log_probs(logits, key)
        probs[key] = log_probs.exp()
        # The same operations the fine-tuned side does (log-softmax, then the dot) on the same chunks:
        # equal logits give KL exactly 0.
        neg_entropy[key] = _dot(probs[key], log_probs)
        argmax[key] = log_probs.argmax(dim=-1)  # once per run: the base is cached
        top_count[key] = _top_set(log_probs).sum(dim=-1)
    return BaseReference(probs, neg_entropy, argmax, top_count)


def _top_set(log_probs: torch.Tensor) -> torch.Tensor:
    """[..., vocab] bool: the tokens at each row's highest probability (more than one where there are ties)."""
    return log_probs == log_probs.amax(dim=-1, keepdim=True)


def _agreement(
    log_probs: torch.Tensor,
    base_argmax: torch.Tensor,
    at_base_argmax: torch.Tensor,
    base_probs: torch.Tensor,
    base_ties: torch.Tensor,
) -> torch.Tensor:
    """Per position, |T_ft ∩ T_base| / |T_ft ∪ T_base| (T: the tokens at a model's highest probability).

    Ties do not count as agreement: a model collapsed to uniform predictions agrees on about 1/vocab
    of the positions, not all. Where the base's top token is unique (almost every position) the
    overlap is 1/|T_ft| if that token is among the fine-tuned model's top tokens, else 0. Whether
    another token shares the fine-tuned maximum is read from a second maximum with the base's token
    masked out (two fast reductions; counting ties at every position would double the metric work),
    and ties are counted only where there are some. Where the base itself has k > 1 tokens tied (rare:
    their count is cached, found in log-probabilities like the fine-tuned side's), its top set is the
    k most probable tokens. Masks `log_probs` in place: call it last.
    """
    agreement = torch.zeros(at_base_argmax.shape, dtype=torch.float64, device=log_probs.device)
    base_tied = base_ties > 1
    if bool(base_tied.any()):
        rows = base_tied.nonzero(as_tuple=True)
        counts = base_ties[rows]
        base_top = base_probs[rows].topk(int(counts.max()), dim=-1).indices
        in_base_top = torch.arange(base_top.shape[-1], device=counts.device) < counts.unsqueeze(-1)
        ft_top = _top_set(log_probs[rows])
        shared = (ft_top.gather(-1, base_top) & in_base_top).sum(dim=-1)
        agreement[rows] = shared / (ft_top.sum(dim=-1) + counts - shared).to(torch.float64)
    top = log_probs.amax(dim=-1)
    agrees = (at_base_argmax >= top) & ~base_tied
    log_probs.scatter_(-1, base_argmax.unsqueeze(-1), -math.inf)
    tied = agrees & (log_probs.amax(dim=-1) >= top)
    agreement[agrees] = 1.0
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)
        agreement[rows] = 1.0 / (1 + (log_probs[rows] == top[rows].unsqueeze(-1)).sum(dim=-1)).to(torch.float64)
    return agreement


def batch_forgetting_sums(
    ft_logits: torch.Tensor, base: BaseReference, next_tokens: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> dict[str, torch.Tensor]:
    """Sums over positions of each metric's per-token quantity (averaged by the caller).

    `ft_logits` is [batch, T, vocab] (the last position is not scored). Per chunk: the fine-tuned log-probabilities (one fused
    pass), their maximum, their dot with p_base and two gathers: a bounded number of positions at a time.
    """
    device = ft_logits.device
    sums = {name: torch.zeros((), dtype=torch.float64, device=device) for name in FORGETTING_METRICS}
    for key in _chunks(ft_logits, chunk_elements):
        log_probs = _chunk_log_probs(ft_logits, key)
        at_base_argmax = _at(log_probs, base.argmax[key])
        base_probs = base.probs[key].to(device)
        soft = -_dot(base_probs, log_probs)  # cross-entropy: −Σ p_base log p_ft
        at_next_token = _at(log_probs, next_tokens[key])
        sums[FORGET_HARD] -= at_base_argmax.sum()
        sums[FORGET_SOFT] += soft.sum()
        sums[FORGET_KL] += (soft + base.neg_entropy[key].to(device)).sum()
        sums[FORGET_DATA] -= at_next_token.sum()
        base_argmax, base_ties = base.argmax[key].to(device), base.top_count[key].to(device)
        sums[FORGET_AGREE] += _agreement(
            log_probs, base_argmax, at_base_argmax, base_probs, base_ties
        ).sum()  # last: masks log_probs
    return {name: value.cpu() for name, value in sums.items()}


class ForgettingEvaluator:
    """Computes the forgetting metrics of a PEFT model against its own base on fixed text."""

    def __init__(
        self,
        blocks: PackedBlocks,
        batch_size: int,
        base_cache_mb: int,
        vocab_size: int,
        chunk_elements: Optional[int] = None,  # None: chunk_elements_for(device)
    ):
        self.batches = [blocks.input_ids[i : i + batch_size] for i in range(0, len(blocks), batch_size)]
        positions = blocks.input_ids.shape[1] - 1
        cache_bytes = len(blocks) * positions * vocab_size * 4
        self.base_cache_needed_mb = math.ceil(cache_bytes / (1024 * 1024))
        """What caching the base's predictions would take (`forget.base_cache_mb` must reach it)."""
        self.keep_base_in_memory = cache_bytes <= base_cache_mb * 1024 * 1024
        self.vocab_size = vocab_size
        self.chunk_elements = chunk_elements
        self._base_cache: Optional[list[BaseReference]] = None

    def _base(self, model, batch_index: int, input_ids: torch.Tensor, forward_context: ForwardContext) -> BaseReference:
        if self._base_cache is not None:
            return self._base_cache[batch_index]
        with model.disable_adapter():
            return base_reference(_logits(model, input_ids, forward_context), self._chunk_elements(input_ids.device))

    def _chunk_elements(self, device: torch.device) -> int:
        return self.chunk_elements or chunk_elements_for(device)

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
                reference = base_reference(
                    _logits(model, input_ids.to(device), forward_context), self._chunk_elements(device)
                )
                cache.append(
                    BaseReference(
                        reference.probs.cpu(),
                        reference.neg_entropy.cpu(),
                        reference.argmax.cpu(),
                        reference.top_count.cpu(),
                    )
                )
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
            sums = batch_forgetting_sums(ft_logits, base, input_ids[:, 1:], self._chunk_elements(device))
            for name, value in sums.items():
                totals[name] += float(value)
            count += ft_logits.shape[0] * (ft_logits.shape[1] - 1)
        model.train(was_training)
        return {name: total / count for name, total in totals.items()}


@torch.no_grad()
def held_out_loss(
    model,
    blocks: PackedBlocks,
    batch_size: int,
    device: torch.device,
    forward_context: ForwardContext = nullcontext,
    chunk_elements: Optional[int] = None,  # None: chunk_elements_for(device)
) -> float:
    """L_ft: token-weighted mean next-token cross-entropy on held-out fine-tuning blocks."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        input_ids = blocks.input_ids[start : start + batch_size].to(device)
        targets = blocks.labels[start : start + batch_size, 1:].to(device)
        logits = _logits(model, input_ids, forward_context)
        for key in _chunks(logits, chunk_elements or chunk_elements_for(device)):
            scored = targets[key] != -100
            total -= float(_at(_chunk_log_probs(logits, key), targets[key].clamp(min=0))[scored].sum())
            tokens += int(scored.sum())
    model.train(was_training)
    return total / max(tokens, 1)
