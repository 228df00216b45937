"""Nested mappings as flat dotted keys (MLflow params, tags)."""

from __future__ import annotations

from typing import Any


def flatten(mapping: dict[str, Any], prefix: str = "", join_lists: bool = True) -> dict[str, Any]:
    """{'lora': {'rank': 4}} -> {'lora.rank': 4}.

    With `join_lists` a list becomes its items comma-joined (MLflow params are text); without,
    it is kept whole.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}.", join_lists))
        elif isinstance(value, list) and join_lists:
            flat[dotted] = ",".join(str(item) for item in value)
        else:
            flat[dotted] = value
    return flat
