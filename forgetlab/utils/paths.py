"""Telling a local path from a Hugging Face Hub id ('owner/name') in what a user wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Optional


def is_local_path(text: str, suffixes: Optional[Collection[str]] = None) -> bool:
    """Whether `text` names a local file or folder rather than a Hub id.

    Local when it starts with '.', '/' or '~', has more than one '/' (a Hub id has one), exists,
    or ends in a file suffix: any suffix, or with `suffixes` only those (lower-cased), for callers
    whose Hub ids may contain dots (e.g. 'Qwen/Qwen2.5-0.5B' for data sets).
    """
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or Path(text).exists():
        return True
    suffix = Path(text).suffix
    return suffix != "" if suffixes is None else suffix.lower() in suffixes
