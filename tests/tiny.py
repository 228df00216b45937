"""The overrides that turn the r4 config into a seconds-long run on the tiny embedded base."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
R4 = REPO / "lightning_configs" / "r4.yaml"
TINY_BASE = [
    "model.name=embedded-tiny",
    "train.context_length=32",
    "train.batch_size=4",
    "train.ft_eval_sequences=4",
    "forget.num_sequences=4",
    "forget.batch_size=4",
    "train.warmup_steps=2",
]


def overrides_block(items: list[str]) -> str:
    """`key=value` overrides as the indented lines of a sweep file's `overrides:` section."""
    return "".join(f"  {item.replace('=', ': ', 1)}\n" for item in items)
