"""The embedded base models by name: build on first use, then return the cached one.

`embedded` is the default base of every forgetlab config (works offline on a laptop CPU);
`embedded-tiny` builds in seconds, for tests. A cached base lives in
`<cache>/bases/<name>-<spec hash>-<corpus fingerprint>/` (cache: see `cache.py`) and contains:

    model/        save_pretrained() of the LlamaForCausalLM and its tokenizer (AutoModel/AutoTokenizer load it)
    forget.txt    the held-out docstrings, documents separated by two blank lines (DOCUMENT_SEPARATOR)
    forget.jsonl  the same documents, one {"text": ...} per line
    pretrain.jsonl the pretraining documents, one {"text": ...} per line: replay text (`embedded:pretrain`),
                  written at build time (bases built before that: on first use by `ensure_pretrain_documents`)
    base.json     spec, corpus fingerprint, base fingerprint (sha256 of model.safetensors),
                  held-out loss and its curve, tokens seen, build seconds, library versions

Pretraining ends every document with EOS and packs them into one stream; evaluating forget.jsonl
(or forget.txt split into documents) the same way measures the base on exactly its own kind of text.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetlab.embedded.cache import build_once, completed_entries, sha256_file, sha256_json
from forgetlab.embedded.corpus import (
    DOCUMENT_SEPARATOR,
    DocstringCorpus,
    collect_docstrings,
    stdlib_signature,
)
from forgetlab.embedded.pretrain import DEFAULT_SPEC, TINY_SPEC, BaseSpec
from forgetlab.errors import UserError
from forgetlab.locations import cache_root
from forgetlab.utils.files import write_atomic, write_json_atomic
from forgetlab.utils.versions import package_versions

BASE_SPECS: dict[str, BaseSpec] = {"embedded": DEFAULT_SPEC, "embedded-tiny": TINY_SPEC}
# Bump when the build itself (tokenizer training, pretraining loop, file layout) changes behaviour,
# so that caches built by older code are not mistaken for the new recipe.
BUILD_RECIPE = "1"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class EmbeddedBase:
    """A built embedded base: where its files are and the numbers that identify it."""

    name: str
    model_dir: Path
    forget_text_path: Path
    corpus_fingerprint: str
    base_fingerprint: str
    heldout_loss: float
    spec: BaseSpec
    folder: Path

    @property
    def forget_documents_path(self) -> Path:
        return self.folder / "forget.jsonl"

    def info(self) -> dict[str, Any]:
        """Everything recorded at build time (base.json)."""
        return json.loads((self.folder / "base.json").read_text(encoding="utf-8"))


def spec_for(name: str) -> BaseSpec:
    try:
        return BASE_SPECS[name]
    except KeyError:
        raise UserError(
            f"unknown embedded base '{name}'; use one of {', '.join(sorted(BASE_SPECS))}, "
            "or give a local checkpoint folder"
        ) from None


def base_folder_name(name: str, spec: BaseSpec, corpus_fingerprint: str) -> str:
    spec_hash = sha256_json({"spec": spec.identity(), "recipe": BUILD_RECIPE})
    return f"{name}-{spec_hash[:12]}-{corpus_fingerprint[:12]}"


def corpus_fingerprint(root: Path) -> str:
    """The docstring corpus fingerprint, read from a memo when the stdlib is unchanged.

    Reading the corpus costs seconds, stat-ing the stdlib milliseconds: this is what keeps a cache
    hit fast. The memo key covers the stdlib files and the corpus code, so either changing misses.
    """
    corpus_code = sha256_file(Path(__file__).with_name("corpus.py"))
    key = sha256_json({"stdlib": stdlib_signature(), "corpus_code": corpus_code})
    memo = root / "stdlib" / f"{key[:32]}.json"
    try:
        return str(json.loads(memo.read_text(encoding="utf-8"))["corpus_fingerprint"])
    except (OSError, ValueError, KeyError):
        pass
    corpus = collect_docstrings()
    write_json_atomic(
        memo,
        {
            "corpus_fingerprint": corpus.fingerprint,
            "python_version": corpus.python_version,
            "stdlib_dir": corpus.stdlib_dir,
        },
    )
    return corpus.fingerprint


def _versions() -> dict[str, str]:
    return package_versions(("torch", "transformers", "tokenizers", "forgetlab"))


def _write_documents(path: Path, documents: tuple[str, ...]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for document in documents:
            handle.write(json.dumps({"text": document}, ensure_ascii=False) + "\n")


def _write_texts(folder: Path, corpus: DocstringCorpus) -> None:
    (folder / "forget.txt").write_text(DOCUMENT_SEPARATOR.join(corpus.heldout) + "\n", encoding="utf-8")
    _write_documents(folder / "forget.jsonl", corpus.heldout)
    _write_documents(folder / "pretrain.jsonl", corpus.pretrain)


def _build(folder: Path, name: str, spec: BaseSpec, progress: bool) -> None:
    from forgetlab.embedded.pretrain import pretrain
    from forgetlab.embedded.tokenizer import encode_documents, train_tokenizer

    started = time.perf_counter()
    corpus = collect_docstrings()
    tokenizer = train_tokenizer(corpus.pretrain, spec.vocab, spec.context)
    train_stream = encode_documents(tokenizer, corpus.pretrain)
    heldout_stream = encode_documents(tokenizer, corpus.heldout)
    result = pretrain(spec, tokenizer, train_stream, heldout_stream, progress=progress)

    model_dir = folder / "model"
    result.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    _write_texts(folder, corpus)
    write_json_atomic(
        folder / "base.json",
        {
            "name": name,
            "spec": spec.as_dict(),
            "build_recipe": BUILD_RECIPE,
            "parameters": result.parameters,
            "tokens_seen": result.tokens_seen,
            "heldout_loss": result.heldout_loss,
            "heldout_curve": [list(point) for point in result.heldout_curve],
            "final_train_loss": result.final_train_loss,
            "uniform_loss": math.log(spec.vocab),
            "base_fingerprint": sha256_file(model_dir / WEIGHTS_FILE),
            "corpus": {
                "fingerprint": corpus.fingerprint,
                "python_version": corpus.python_version,
                "stdlib_dir": corpus.stdlib_dir,
                "pretrain_documents": len(corpus.pretrain),
                "heldout_documents": len(corpus.heldout),
                "heldout_dropped_as_contained": corpus.dropped_heldout,
                "pretrain_chars": len(corpus.pretrain_text),
                "heldout_chars": len(corpus.heldout_text),
                "pretrain_tokens": len(train_stream),
                "heldout_tokens": len(heldout_stream),
            },
            "tokenizer_vocab": len(tokenizer),
            "pretrain_seconds": result.seconds,
            "threads": result.threads,
            "tokens_per_second": result.tokens_per_second,
            "build_seconds": time.perf_counter() - started,
            "versions": _versions(),
        },
    )


def _load(folder: Path, spec: BaseSpec) -> EmbeddedBase:
    info = json.loads((folder / "base.json").read_text(encoding="utf-8"))
    return EmbeddedBase(
        name=info["name"],
        model_dir=folder / "model",
        forget_text_path=folder / "forget.txt",
        corpus_fingerprint=info["corpus"]["fingerprint"],
        base_fingerprint=info["base_fingerprint"],
        heldout_loss=float(info["heldout_loss"]),
        spec=spec,
        folder=folder,
    )


def ensure_embedded_base(name: str = "embedded", progress: bool = True, force: bool = False) -> EmbeddedBase:
    """The embedded base `name`, pretrained on first use (minutes for 'embedded') and cached after.

    `force` rebuilds even when cached (do not run it while runs are reading that base).
    """
    spec = spec_for(name)
    root = cache_root()
    folder = root / "bases" / base_folder_name(name, spec, corpus_fingerprint(root))
    if progress and (force or not folder.is_dir()):
        print(f"building embedded base '{name}' in {folder} (once; later runs reuse it)", file=sys.stderr)
    build_once(folder, lambda temporary: _build(temporary, name, spec, progress), force=force)
    return _load(folder, spec)


def ensure_pretrain_documents(name: str = "embedded", progress: bool = True) -> Path:
    """The pretraining documents of base `name` as jsonl (`embedded:pretrain`, the replay text).

    These are exactly the documents the base was pretrained on and never the held-out forgetting
    text (the split is by hash, see `corpus.py`). Written beside the base on first use (seconds:
    the stdlib is read again) and atomically, so concurrent runs of a sweep may all ask for it.
    """
    base = ensure_embedded_base(name, progress=progress)
    path = base.folder / "pretrain.jsonl"
    if path.exists():
        return path
    corpus = collect_docstrings()
    if corpus.fingerprint != base.corpus_fingerprint:
        raise UserError(
            f"the stdlib's docstrings changed since base '{name}' was built; rebuild it with "
            f"`forgetlab base build --name {name} --force` before replaying its pretraining text"
        )
    # 0o644 like the base's other files.
    write_atomic(path, lambda temporary: _write_documents(temporary, tuple(corpus.pretrain)), mode=0o644)
    return path


def list_cached_bases() -> list[dict[str, Any]]:
    """base.json of every complete base in the cache, plus its folder and size on disk."""
    found = completed_entries(cache_root() / "bases", "base.json")
    for info in found:
        info["bytes"] = sum(p.stat().st_size for p in Path(info["folder"]).rglob("*") if p.is_file())
    return found
