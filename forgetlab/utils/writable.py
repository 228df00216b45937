"""Whether a file could be written (created, or changed in place along with files beside it).

Asked with `os.access`, which reports a read-only file system (EROFS) even to root, who would
otherwise pass every permission check: a read-only bind mount or NFS export is caught here, before
a command does minutes of work and then fails to write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def why_not_writable(path: Path) -> Optional[str]:
    """None when `path` can be written and files created beside it; else why not, in a few words.

    SQLite and DuckDB write more than the file itself (a journal or WAL, a lock file), so the
    folder must take new files too. A missing folder must be creatable: its nearest existing
    ancestor is asked instead.
    """
    path = Path(path).absolute()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{_file_system_or_permissions(folder)}: {folder} takes no new files"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{_file_system_or_permissions(path)}: {path} cannot be written"
    return None


def _file_system_or_permissions(path: Path) -> str:
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "read-only file system" if read_only else "no write permission"
