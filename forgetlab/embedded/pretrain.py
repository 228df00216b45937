"""Pretrain the embedded base: a small Llama trained from scratch on the stdlib's docstrings.

This is not the fine-tuning path (that is LoRA through Lightning); it is a plain, seeded torch loop
run once per spec, whose only job is a base that knows enough English docstring prose to have
something to forget. Random windows of the token stream, AdamW, linear warm-up then cosine decay.
The same seed, spec, corpus, library versions and thread count give bit-identical weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast


@dataclass(frozen=True)
class BaseSpec:
    """Everything that determines an embedded base besides the corpus; its hash names the cache folder."""

    hidden: int = 192
    """Model width (hidden_size)."""
    intermediate: int = 512
    """Width of the SwiGLU MLP (intermediate_size)."""
    layers: int = 4
    """Number of decoder layers."""
    heads: int = 4
    """Attention heads; hidden must be divisible by it."""
    kv_heads: int = 4
    """Key/value heads (grouped-query attention when fewer than heads)."""
    vocab: int = 4096
    """BPE vocabulary size, special tokens included."""
    context: int = 128
    """Tokens per training window; also the model's max_position_embeddings."""
    batch_size: int = 16
    """Windows per optimizer step."""
    steps: int = 1000
    """Optimizer steps; tokens seen = steps * batch_size * context."""
    lr: float = 3e-3
    """Peak AdamW learning rate."""
    min_lr_ratio: float = 0.1
    """The cosine schedule ends at lr * min_lr_ratio."""
    warmup_steps: int = 50
    """Linear warm-up from ~0 to lr."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay, on matrices only (not norms)."""
    grad_clip: float = 1.0
    """Max global gradient norm."""
    eval_every: int = 100
    """Evaluate the held-out loss every this many steps (and always at the end); 0 = end only."""
    seed: int = 0
    """Seeds the initial weights and the order of training windows."""
    threads: int = 0
    """Torch CPU threads while pretraining; 0 = torch's default. Tiny models gain nothing from more
    than 1 and lose ~10x when other processes share the cores. How to run, not what is built: not
    part of `identity()`."""

    @property
    def token_budget(self) -> int:
        return self.steps * self.batch_size * self.context

    def as_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """The fields that define the base (hashed into its cache folder name)."""
        return {key: value for key, value in asdict(self).items() if key not in EXECUTION_FIELDS}


EXECUTION_FIELDS = frozenset({"threads"})


DEFAULT_SPEC = BaseSpec()
# Small enough for tests: builds in seconds, yet learns well below the uniform loss ln(512).
TINY_SPEC = BaseSpec(
    hidden=32,
    intermediate=64,
    layers=2,
    heads=2,
    kv_heads=2,
    vocab=512,
    context=128,
    batch_size=8,
    steps=150,
    lr=1e-2,
    warmup_steps=10,
    eval_every=0,
    threads=1,
)


@dataclass
class PretrainResult:
    model: "LlamaForCausalLM"
    parameters: int
    tokens_seen: int
    heldout_loss: float
    final_train_loss: float  # mean over the last 10% of steps
    seconds: float
    heldout_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out loss)
    threads: int = 0  # torch CPU threads it ran with

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.seconds if self.seconds > 0 else float("nan")


def build_model(spec: BaseSpec, tokenizer: "PreTrainedTokenizerFast") -> "LlamaForCausalLM":
    """A randomly initialised Llama of the spec's shape (seeded by the caller)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.context,
        # Untied: LoRA never touches embeddings, and tying would make the output head move with the input.
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def lr_at(spec: BaseSpec, step: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine to lr * min_lr_ratio."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
    floor = spec.lr * spec.min_lr_ratio
    return floor + (spec.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: "torch.nn.Module", spec: BaseSpec) -> "torch.optim.Optimizer":
    import torch

    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": matrices, "weight_decay": spec.weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)


def _window_loss(model: "LlamaForCausalLM", windows: "torch.Tensor") -> "torch.Tensor":
    """Mean next-token cross-entropy over windows of context + 1 tokens."""
    import torch.nn.functional as F

    inputs, targets = windows[:, :-1], windows[:, 1:]
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def evaluate_stream(model: "LlamaForCausalLM", stream: Sequence[int], context: int, batch_size: int = 32) -> float:
    """Mean next-token loss over `stream` cut into consecutive, non-overlapping windows."""
    import torch

    data = torch.tensor(stream, dtype=torch.long)
    count = (len(data) - 1) // context
    if count == 0:
        raise ValueError(f"held-out stream of {len(data)} tokens is shorter than one context of {context}")
    # Windows share their boundary token so every token but the first is predicted exactly once.
    windows = data[: count * context + 1].unfold(0, context + 1, context)
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, count, batch_size):
            batch = windows[start : start + batch_size]
            total += float(_window_loss(model, batch)) * batch.shape[0] * context
            tokens += batch.shape[0] * context
    model.train(was_training)
    return total / tokens


def pretrain(
    spec: BaseSpec,
    tokenizer: "PreTrainedTokenizerFast",
    train_stream: Sequence[int],
    heldout_stream: Sequence[int],
    progress: bool = True,
) -> PretrainResult:
    """Train a fresh model of `spec` on random windows of `train_stream`; report the held-out loss."""
    import torch

    previous_threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        return _pretrain(spec, tokenizer, train_stream, heldout_stream, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _pretrain(
    spec: BaseSpec,
    tokenizer: "PreTrainedTokenizerFast",
    train_stream: Sequence[int],
    heldout_stream: Sequence[int],
    progress: bool,
) -> PretrainResult:
    """Pretrain the base from scratch; returns the model, its held-out curve and timings.

    Longer than 60 lines on purpose: it is the whole training loop (nanoGPT's shape), read in one
    sitting; split up, the order of seeding, window drawing and optimizer steps that makes a base
    reproducible would be spread over several functions.
    """
    import torch
    from tqdm.auto import tqdm

    threads = torch.get_num_threads()
    torch.manual_seed(spec.seed)
    model = build_model(spec, tokenizer)
    model.train()
    optimizer = _optimizer(model, spec)
    data = torch.tensor(train_stream, dtype=torch.long)
    if len(data) <= spec.context + 1:
        raise ValueError(f"pretraining stream of {len(data)} tokens is shorter than one context of {spec.context}")
    # A generator of its own, so nothing else that draws random numbers can shift the window order.
    windows_rng = torch.Generator().manual_seed(spec.seed)
    offsets_in_window = torch.arange(spec.context + 1)

    curve: list[tuple[int, float]] = []
    recent: list[float] = []
    tail = max(1, spec.steps // 10)
    smoothed = float("nan")
    started = time.perf_counter()
    bar = tqdm(range(spec.steps), desc="pretraining embedded base", unit="step", disable=not progress, mininterval=1.0)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(spec, step)
        starts = torch.randint(0, len(data) - spec.context - 1, (spec.batch_size,), generator=windows_rng)
        loss = _window_loss(model, data[starts[:, None] + offsets_in_window])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()

        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"pretraining loss became {value} at step {step}; lower BaseSpec.lr")
        smoothed = value if step == 0 else 0.95 * smoothed + 0.05 * value
        if step >= spec.steps - tail:
            recent.append(value)
        done = step + 1
        if spec.eval_every and done % spec.eval_every == 0 and done < spec.steps:
            curve.append((done, evaluate_stream(model, heldout_stream, spec.context)))
            bar.set_postfix(loss=f"{smoothed:.3f}", heldout=f"{curve[-1][1]:.3f}", refresh=False)
        else:
            bar.set_postfix(loss=f"{smoothed:.3f}", refresh=False)
    bar.close()

    heldout = evaluate_stream(model, heldout_stream, spec.context)
    curve.append((spec.steps, heldout))
    model.eval()
    return PretrainResult(
        model=model,
        parameters=sum(p.numel() for p in model.parameters()),
        tokens_seen=spec.token_budget,
        heldout_loss=heldout,
        final_train_loss=sum(recent) / len(recent),
        seconds=time.perf_counter() - started,
        heldout_curve=curve,
        threads=threads,
    )
