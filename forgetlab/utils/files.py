"""Writing a file so that a concurrent reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional


def current_umask() -> int:
    current = os.umask(0)  # the only way to read it is to set it
    os.umask(current)
    return current


def write_atomic(path: Path, write: Callable[[Path], None], mode: Optional[int] = None) -> None:
    """Call `write(temporary)` on a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on one file system, so a kill during `write` leaves the old file (or
    none) and a stray temporary that is removed here when Python gets the chance. `mode` is the
    new file's permission bits (default: 0o666 less the umask, as `open` would give; mkstemp's
    own 0600 would hide a shared cache from other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, mode if mode is not None else 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_text_atomic(path: Path, text: str, mode: Optional[int] = None) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), mode)


def write_json_atomic(path: Path, value: Any) -> None:
    """JSON, indented and key-sorted (stable bytes for the same value), written atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
