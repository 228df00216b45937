"""GGUF files (llama.cpp, Ollama) as base models: converted once into an ordinary checkpoint folder.

transformers reads a GGUF file and dequantizes it, but the model it returns is flagged quantized
and cannot be saved or trained as a plain checkpoint. `ensure_gguf_checkpoint` therefore rebuilds
the model from its config, loads the dequantized weights into it and saves that, with the
tokenizer (and chat template) the file carries, into the cache:

    <cache>/gguf/<file stem>-<sha256 of the file, 16 hex>/   config.json, model.safetensors, tokenizer files,
                                                             gguf.json (what was converted, from which file)

The folder is keyed by the file's sha256, so a changed file converts again and an unchanged one
(wherever it lies) is found. The sha256 is also the base's fingerprint in the run's params. Hashing
a multi-GB file takes seconds; it is remembered per (path, size, modification time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from forgetlab.embedded.cache import build_once, completed_entries, file_lock
from forgetlab.errors import UserError
from forgetlab.locations import cache_root
from forgetlab.utils.files import write_json_atomic

GGUF_SUFFIX = ".gguf"
GGUF_MAGIC = b"GGUF"
GGUF_EXTRA_HINT = "pip install 'forgetlab[gguf]'"
HASH_BLOCK = 8 << 20


@dataclass(frozen=True)
class GgufCheckpoint:
    """A GGUF file converted into a checkpoint folder that `from_pretrained` reads."""

    folder: Path
    sha256: str
    source: Path

    @property
    def fingerprint(self) -> str:
        return f"gguf:{self.sha256[:16]}"


def is_gguf_file(name: str) -> bool:
    return name.lower().endswith(GGUF_SUFFIX)


def _require_gguf_package() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UserError(
            f"model.name: reading a .gguf file needs the gguf package; install it with {GGUF_EXTRA_HINT}"
        ) from None


def _check_magic(path: Path) -> None:
    """A file that does not start with GGUF's magic is refused before transformers reads it."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise UserError(
            f"model.name: '{path}' is not a GGUF file (it does not start with 'GGUF'); give a .gguf model file"
        )


def _hash_memo_path() -> Path:
    return cache_root() / "gguf" / "sha256-memo.json"


def file_sha256(path: Path, progress: bool) -> str:
    """sha256 of the file, remembered per (path, size, mtime) so a 4 GB file is hashed once."""
    import hashlib

    stat = path.stat()
    memo_key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    memo_file = _hash_memo_path()
    memo = json.loads(memo_file.read_text(encoding="utf-8")) if memo_file.exists() else {}
    if memo_key in memo:
        return memo[memo_key]
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with (
        open(path, "rb") as handle,
        tqdm(
            total=stat.st_size,
            unit="B",
            unit_scale=True,
            desc=f"Hashing {path.name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
            bar.update(len(block))
    sha = digest.hexdigest()
    with file_lock(memo_file.with_suffix(".lock")):
        memo = json.loads(memo_file.read_text(encoding="utf-8")) if memo_file.exists() else {}
        memo[memo_key] = sha
        write_json_atomic(memo_file, memo)
    return sha


def _convert(source: Path, folder: Path, sha256: str, progress: bool) -> None:
    """Dequantize `source` into a plain float32 checkpoint in `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not progress:
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    except Exception as error:  # noqa: BLE001  (gguf and transformers raise many kinds for a bad file)
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UserError(
            f"model.name: could not read the GGUF file '{source}' ({type(error).__name__}: {message}); "
            "the file may be truncated or of an architecture transformers cannot read; download it again "
            "or give a checkpoint folder"
        ) from None
    finally:
        if not progress:
            hf_logging.enable_progress_bar()
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized now; the saved checkpoint is plain
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    plain.tie_weights()
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json_atomic(
        folder / "gguf.json",
        {
            "source": str(source.resolve()),
            "sha256": sha256,
            "bytes": source.stat().st_size,
            "architecture": config.model_type,
            "parameters": sum(parameter.numel() for parameter in plain.parameters()),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        },
    )


def ensure_gguf_checkpoint(path: Path, progress: bool = True) -> GgufCheckpoint:
    """The checkpoint folder converted from the GGUF file at `path`, converting it on first use."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"model.name: GGUF file '{path}' does not exist; give an existing .gguf file")
    _check_magic(path)
    _require_gguf_package()
    sha256 = file_sha256(path, progress)
    folder = cache_root() / "gguf" / f"{path.stem}-{sha256[:16]}"
    if progress and not folder.is_dir():
        print(f"Converting {path.name} into forgetlab's cache (once): {folder}", flush=True)
    build_once(folder, lambda temporary: _convert(path, temporary, sha256, progress))
    return GgufCheckpoint(folder=folder, sha256=sha256, source=path)


def cached_gguf_checkpoints() -> list[dict]:
    """gguf.json of every converted file in the cache, plus its folder."""
    return completed_entries(cache_root() / "gguf", "gguf.json")


__all__ = [
    "GGUF_EXTRA_HINT",
    "GgufCheckpoint",
    "cached_gguf_checkpoints",
    "ensure_gguf_checkpoint",
    "file_sha256",
    "is_gguf_file",
]
