"""Where a JSON or JSON-lines file stops being valid, in words a user can act on.

Parsers report a character offset into whatever chunk they were reading ("Trailing data at
position 59"); a user needs the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


def json_error_location(file: Path) -> Optional[str]:
    """Where a JSON or JSON-lines file stops being valid, as 'line N: what' (the parser behind
    `datasets` says only "Trailing data at position 59", a character offset into a chunk)."""
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        json.loads(text)
        return None  # one valid document: whatever failed was not its syntax
    except json.JSONDecodeError as whole:
        as_document = whole
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        json.loads(first)
    except json.JSONDecodeError:
        if file.suffix.lower() != ".jsonl":  # a single document (a list): its own line and column
            return f"line {as_document.lineno}, column {as_document.colno}: {as_document.msg}"
    for number, line in enumerate(lines, start=1):  # JSON lines: one document per line
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as error:
            shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
            return f"line {number} is not one JSON object ({error.msg} at column {error.colno}): {shown}"
    return None
