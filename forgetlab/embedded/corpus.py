"""The docstrings of the standard library: the embedded base's pretraining text.

Every Python installation carries the same ~1.6 MB of English prose in its docstrings, so a base
pretrained on them needs no download. Collection is deterministic (sorted walk, fixed filters,
exact de-duplication), and 5% of the documents, chosen by a hash of their text, are held out
from pretraining and tokenizer training: they become the forgetting text, on which the base's
own behaviour is what fine-tuning may forget. Choosing by hash (not by position or a seeded
shuffle) keeps a document on the same side of the split whatever else the stdlib contains.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import re
import sys
import sysconfig
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

# Folders of the stdlib that are not the library itself (tests, IDLE, the old 2to3 fixers) or are
# not the stdlib at all (site-packages: whatever the user installed).
SKIPPED_FOLDERS = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"})
# Shorter docstrings are mostly "Return self." and friends: repetitive, and nothing to learn.
MIN_DOC_CHARS = 40
HELDOUT_PER_10000 = 500
# Documents never contain a blank-line run longer than one line (see `_normalise`), so two blank
# lines separate documents unambiguously in a file.
DOCUMENT_SEPARATOR = "\n\n\n"


@dataclass(frozen=True)
class DocstringCorpus:
    """The de-duplicated docstrings, split into pretraining and held-out (forgetting) documents."""

    pretrain: tuple[str, ...]
    heldout: tuple[str, ...]
    fingerprint: str  # sha256 of the exact corpus text (all documents, in order, with separators)
    python_version: str  # sys.version of the interpreter whose stdlib was read
    stdlib_dir: str
    dropped_heldout: int  # held-out documents that occur inside a pretraining document, so were dropped

    @property
    def pretrain_text(self) -> str:
        return DOCUMENT_SEPARATOR.join(self.pretrain)

    @property
    def heldout_text(self) -> str:
        return DOCUMENT_SEPARATOR.join(self.heldout)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(root: Path | None = None) -> list[Path]:
    """The stdlib's .py files in a fixed order (sorted at every level), skipping non-library folders."""
    root = stdlib_dir() if root is None else root
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        # Pruning in place stops os.walk descending; sorting fixes the order it descends in.
        subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
        found.extend(Path(folder) / name for name in sorted(files) if name.endswith(".py"))
    return found


def stdlib_signature(root: Path | None = None) -> str:
    """A cheap stand-in for the corpus fingerprint: interpreter version plus every source's path, size, mtime.

    Reading and parsing the stdlib takes seconds; stat-ing it takes milliseconds. The cache maps this
    signature to the real fingerprint so a cached base is found without re-reading the corpus.
    """
    root = stdlib_dir() if root is None else root
    digest = hashlib.sha256(f"{sys.version}\0{root}\0".encode())
    for path in stdlib_sources(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_source(path: Path) -> str | None:
    """A source file's text (honouring its coding cookie), or None when it cannot be read."""
    try:
        with tokenize.open(path) as handle:
            return handle.read()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def parse_source(path: Path) -> ast.Module | None:
    text = read_source(path)
    if text is None:
        return None
    try:
        return ast.parse(text, filename=str(path))
    except (SyntaxError, ValueError):
        # A few stdlib files are templates or target another grammar; they are not prose sources.
        return None


def _normalise(docstring: str) -> str:
    lines = [line.rstrip() for line in inspect.cleandoc(docstring).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _docstrings(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            raw = ast.get_docstring(node, clean=False)
            if raw:
                yield _normalise(raw)


def is_heldout(document: str) -> bool:
    digest = hashlib.sha256(document.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < HELDOUT_PER_10000


def split_documents(text: str) -> list[str]:
    """Inverse of joining with `DOCUMENT_SEPARATOR` (e.g. to read `forget.txt` back as documents)."""
    return [doc for doc in text.strip("\n").split(DOCUMENT_SEPARATOR) if doc.strip()]


@lru_cache(maxsize=4)
def collect_docstrings(root: Path | None = None) -> DocstringCorpus:
    """Read the stdlib's docstrings and split them; memoised, because a build asks more than once."""
    root = stdlib_dir() if root is None else root
    seen: set[str] = set()
    documents: list[str] = []
    for path in stdlib_sources(root):
        tree = parse_source(path)
        if tree is None:
            continue
        for doc in _docstrings(tree):
            if len(doc) >= MIN_DOC_CHARS and doc not in seen:
                seen.add(doc)
                documents.append(doc)

    pretrain = [doc for doc in documents if not is_heldout(doc)]
    pretrain_text = DOCUMENT_SEPARATOR.join(pretrain)
    # Exact de-duplication still lets a short held-out docstring sit verbatim inside a longer
    # pretraining one; such a document was seen in pretraining, so it cannot measure forgetting.
    candidates = [doc for doc in documents if is_heldout(doc)]
    heldout = [doc for doc in candidates if doc not in pretrain_text]

    fingerprint = hashlib.sha256(DOCUMENT_SEPARATOR.join(documents).encode("utf-8")).hexdigest()
    return DocstringCorpus(
        pretrain=tuple(pretrain),
        heldout=tuple(heldout),
        fingerprint=fingerprint,
        python_version=sys.version,
        stdlib_dir=str(root),
        dropped_heldout=len(candidates) - len(heldout),
    )
