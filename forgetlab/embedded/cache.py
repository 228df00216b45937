"""Where forgetlab keeps what it builds once, and how it builds each thing exactly once.

Location: the folder named by the environment variable `FORGETLAB_CACHE` if it is set, else
`~/.cache/forgetlab`. Layout:

    <cache>/bases/<name>-<spec hash>-<corpus fingerprint>/   one embedded base (see base.py)
    <cache>/datasets/<name>-<recipe key>/                   one embedded data set (see datasets.py)
    <cache>/stdlib/<stdlib signature>.json                  corpus fingerprint memo (see base.py)

Every entry is built in a temporary folder beside its final place and then renamed into place
with `os.replace`, so a reader sees a complete entry or none. A file lock per entry makes a
second process wait for the first one's build instead of building again. Deleting any entry (or
the whole cache) is always safe: it is rebuilt on next use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from forgetlab.utils.files import current_umask


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a JSON-able value, independent of dict order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock held for the block; blocks until it is free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from filelock import FileLock
    except ImportError:  # filelock comes with transformers; fcntl covers a bare install on POSIX
        import fcntl

        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with FileLock(str(path)):
        yield


def _remove_abandoned_builds(final: Path) -> None:
    # Temporary folders left by a build that was killed; only called while holding final's lock,
    # so none of them can belong to a live build.
    for leftover in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def completed_entries(folder: Path, meta_name: str) -> list[dict[str, Any]]:
    """The metadata file `meta_name` of every entry `build_once` completed under `folder`, each with
    its folder added; a build in progress (a dot-folder) is left out."""
    found = []
    for meta in sorted(folder.glob(f"*/{meta_name}")):
        if meta.parent.name.startswith("."):
            continue
        info = json.loads(meta.read_text(encoding="utf-8"))
        info["folder"] = str(meta.parent)
        found.append(info)
    return found


def build_once(final: Path, build: Callable[[Path], None], *, force: bool = False) -> bool:
    """Make sure the folder `final` exists, calling `build(temporary_folder)` if it does not.

    Returns True when this call built it. With `force`, rebuilds even if it exists (the old folder
    is swapped out only once the new one is complete).
    """
    if final.is_dir() and not force:
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f"{final.name}.lock"):
        if final.is_dir() and not force:
            return False  # another process built it while we waited for the lock
        _remove_abandoned_builds(final)
        temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        try:
            # mkdtemp makes the folder private (0700); a cache entry is as readable as any folder.
            temporary.chmod(0o777 & ~current_umask())
            build(temporary)
            if final.exists():
                # os.replace cannot overwrite a non-empty folder: move the old one aside first.
                retired = final.parent / f".{final.name}.{os.getpid()}.old.tmp"
                os.replace(final, retired)
                os.replace(temporary, final)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    return True
