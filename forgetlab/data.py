"""Fine-tuning data and forgetting text: load, tokenise, pack to the context length, cache.

Sources are the embedded data sets (`embedded:code`, `embedded:instruct`, `embedded:forget`),
local files (jsonl/json/parquet/csv/txt, a file or a folder of split files) or hub names, all
read through `datasets.load_dataset`. Text examples are trained on every token; instruction
examples (prompt + response) are shown through a template and trained on the response only.
Examples are concatenated (each ended by EOS) and cut into blocks of `context_length`, with
-100 labels where no loss is taken. Packed blocks are cached as tensors keyed by everything that
determines them, so the second run on the same data starts at once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from forgetlab.config import DataConfig, ForgetConfig, MitigationConfig, TextSource
from forgetlab.errors import UserError
from forgetlab.paths import cache_root
from forgetlab.utils.files import write_atomic
from forgetlab.utils.paths import is_local_path

IGNORE_INDEX = -100
EMBEDDED_SCHEME = "embedded:"
SUFFIX_TO_BUILDER = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
}
VALIDATION_SPLIT_ALIASES = ("validation", "valid", "val", "dev", "test")
PACKING_VERSION = "1"  # bump when packing changes, so stale caches are not reused


@dataclass(frozen=True)
class PackedBlocks:
    """Token blocks of one split: input ids and labels, both [num_blocks, context_length]."""

    input_ids: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class FineTuningData:
    label: str
    kind: str  # "text" or "instruction"
    train: PackedBlocks
    validation: PackedBlocks
    fingerprint: str


def packed_cache_dir() -> Path:
    return cache_root() / "packed"


# ---------------------------------------------------------------------------- reading records


def first_line(error: BaseException) -> str:
    """A library's error message cut to one line, for a one-line UserError."""
    lines = str(error).strip().splitlines()
    return (lines[0][:200] if lines else "") or type(error).__name__


def _builder_for(path: Path) -> str:
    builder = SUFFIX_TO_BUILDER.get(path.suffix.lower())
    if builder is None:
        raise UserError(
            f"{path}: unsupported file type '{path.suffix}'; use one of {', '.join(sorted(SUFFIX_TO_BUILDER))}"
        )
    return builder


def _split_files_in_folder(folder: Path) -> dict[str, Path]:
    """A folder of split files: train.jsonl, validation.jsonl, ... (a single other file is the train split)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIX_TO_BUILDER)
    if not files:
        raise UserError(f"{folder}: no data files (.jsonl, .json, .parquet, .csv, .txt) in this folder")
    splits = {p.stem: p for p in files}
    if len(files) == 1 and files[0].stem not in ("train",) + VALIDATION_SPLIT_ALIASES:
        splits = {"train": files[0]}
    return splits


def _load_local(path: Path, split: str, key: str) -> Optional["datasets.Dataset"]:  # noqa: F821
    """Load one split from a local file or folder; None when the folder has no such split."""
    import datasets

    if path.is_dir():
        splits = _split_files_in_folder(path)
        file = splits.get(split)
        if file is None:
            return None
    else:
        if split != "train" and split not in VALIDATION_SPLIT_ALIASES:
            return None
        if split != "train":
            return None  # a single file is the training data; validation is held out from it
        file = path
    if not os.access(file, os.R_OK):
        raise UserError(f"{key}: cannot read '{file}' (permission denied); fix its permissions")
    builder = _builder_for(file)
    if file.stat().st_size == 0:
        raise UserError(f"{key}: '{file}' is empty; it needs at least a few examples")
    # Plain text: one example per paragraph (blank-line separated), not per line.
    options = {"sample_by": "paragraph"} if builder == "text" else {}
    import logging

    # datasets logs a malformed file's parse error itself (a second line, or a traceback); the
    # UserError below says it once.
    library_logger = logging.getLogger("datasets")
    level = library_logger.level
    library_logger.setLevel(logging.CRITICAL)
    try:
        return datasets.load_dataset(builder, data_files={split: str(file)}, split=split, **options)
    except UserError:
        raise
    except Exception as error:  # datasets raises many types for malformed files
        cause = error
        while cause.__cause__ is not None or cause.__context__ is not None:  # the parser's own words
            cause = cause.__cause__ or cause.__context__
        raise UserError(f"{key}: could not read '{file}' as {builder}: {first_line(cause)}; fix the file or give another {key}") from None
    finally:
        library_logger.setLevel(level)


def _load_hub(name: str, hub_config: Optional[str], split: str, key: str):
    import datasets

    try:
        return datasets.load_dataset(name, hub_config, split=split)
    except ValueError as error:
        if "split" in str(error).lower() or "Unknown split" in str(error):
            return None
        raise UserError(f"{key}: could not load hub data set '{name}': {first_line(error)}") from None
    except Exception as error:
        raise UserError(
            f"{key}: '{name}' is not a local file and could not be loaded from the hub "
            f"({type(error).__name__}); give an existing local path, or go online"
        ) from None


def load_split(source: str, split: str, hub_config: Optional[str], key: str):
    """Records of one split of a source, or None if the source has no such split."""
    if source.startswith(EMBEDDED_SCHEME):
        from forgetlab.embedded import ensure_embedded_dataset

        embedded = ensure_embedded_dataset(source[len(EMBEDDED_SCHEME) :])
        path = {"train": embedded.train_path}.get(split)
        if split in VALIDATION_SPLIT_ALIASES:
            path = embedded.validation_path
        return None if path is None else _load_local(Path(path), "train", key)
    if is_local_path(source, SUFFIX_TO_BUILDER):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"{key}: '{source}' does not exist; give an existing file or folder, or a hub name")
        return _load_local(path, split, key)
    return _load_hub(source, hub_config, split, key)


# ---------------------------------------------------------------------------- tokenising and packing


def _detect_kind(columns: list[str], config: DataConfig) -> str:
    if config.format != "auto":
        needed = [config.text_field] if config.format == "text" else [config.prompt_field, config.response_field]
        missing = [column for column in needed if column not in columns]
        if missing:
            raise UserError(
                f"data.{'text_field' if config.format == 'text' else 'prompt_field/response_field'}: column "
                f"'{missing[0]}' is not in the data (columns: {', '.join(columns)})"
            )
        return config.format
    if config.prompt_field in columns and config.response_field in columns:
        return "instruction"
    if config.text_field in columns:
        return "text"
    raise UserError(
        f"data: found neither a '{config.text_field}' column nor '{config.prompt_field}'+'{config.response_field}' "
        f"columns (columns: {', '.join(columns)}); set data.text_field or data.prompt_field/response_field"
    )


def _token_stream(records, kind: str, config: DataConfig, tokenizer) -> tuple[list[int], list[int]]:
    """Concatenate all examples into one token stream with a parallel label stream."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    labels: list[int] = []
    if kind == "text":
        texts = [text for text in records[config.text_field] if text and str(text).strip()]
        for tokens in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            ids.extend(tokens + [eos])
            labels.extend(tokens + [eos])
        return ids, labels
    prompts = [config.template.format(prompt=prompt) for prompt in records[config.prompt_field]]
    responses = [str(response) for response in records[config.response_field]]
    prompt_tokens = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    response_tokens = tokenizer(responses, add_special_tokens=False)["input_ids"]
    for prompt, response in zip(prompt_tokens, response_tokens):
        ids.extend(prompt + response + [eos])
        labels.extend([IGNORE_INDEX] * len(prompt) + response + [eos])
    return ids, labels


def pack(ids: list[int], labels: list[int], context_length: int) -> PackedBlocks:
    """Cut the streams into full blocks; the ragged tail is dropped (it is less than one block)."""
    num_blocks = len(ids) // context_length
    usable = num_blocks * context_length
    input_tensor = torch.tensor(ids[:usable], dtype=torch.long).view(num_blocks, context_length)
    label_tensor = torch.tensor(labels[:usable], dtype=torch.long).view(num_blocks, context_length)
    return PackedBlocks(input_tensor, label_tensor)


def _records_fingerprint(records) -> str:
    fingerprint = getattr(records, "_fingerprint", None)
    if fingerprint:
        return str(fingerprint)
    digest = hashlib.sha256()
    for row in records:
        digest.update(repr(sorted(row.items())).encode())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()) if hasattr(tokenizer, "backend_tokenizer") else hashlib.sha256(repr(tokenizer).encode())
    return digest.hexdigest()[:16]


def _cached_pack(records, kind: str, config: DataConfig, tokenizer, context_length: int) -> tuple[PackedBlocks, str]:
    parts = [PACKING_VERSION, _records_fingerprint(records), tokenizer_fingerprint(tokenizer), kind, str(context_length)]
    if kind == "text":
        parts.append(config.text_field)
    else:
        parts += [config.prompt_field, config.response_field, config.template]
    key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]
    cache_file = packed_cache_dir() / f"{key}.pt"
    if cache_file.exists():
        stored = torch.load(cache_file, weights_only=True)
        return PackedBlocks(stored["input_ids"], stored["labels"]), key
    blocks = pack(*_token_stream(records, kind, config, tokenizer), context_length)
    stored = {"input_ids": blocks.input_ids, "labels": blocks.labels}
    write_atomic(cache_file, lambda temporary: torch.save(stored, temporary))  # a concurrent run never reads half a file
    return blocks, key


def load_fine_tuning_data(config: DataConfig, tokenizer, context_length: int) -> FineTuningData:
    """Train and held-out blocks of the fine-tuning data."""
    train_records = load_split(config.source, config.train_split, config.hub_config, "data.source")
    if train_records is None:
        raise UserError(f"data.train_split: '{config.source}' has no split '{config.train_split}'")
    validation_records = None
    if config.validation_split:
        validation_records = load_split(config.source, config.validation_split, config.hub_config, "data.source")
    if len(train_records) == 0:
        raise UserError(f"data.source: '{config.source}' is empty; it needs at least a few examples")
    if validation_records is None:
        # A fixed seed (not the run's) so that every run of a sweep is scored on the same held-out text.
        if len(train_records) < 2:
            raise UserError(f"data.source: '{config.source}' has {len(train_records)} example(s); need at least 2 to hold some out")
        split = train_records.train_test_split(test_size=config.validation_fraction, seed=0, shuffle=True)
        train_records, validation_records = split["train"], split["test"]
    kind = _detect_kind(list(train_records.column_names), config)
    train, train_key = _cached_pack(train_records, kind, config, tokenizer, context_length)
    validation, validation_key = _cached_pack(validation_records, kind, config, tokenizer, context_length)
    for name, blocks in (("training", train), ("held-out", validation)):
        if len(blocks) == 0:
            raise UserError(
                f"data.source: the {name} split of '{config.source}' has fewer tokens than one context "
                f"({context_length}); add data or lower train.context_length"
            )
    fingerprint = hashlib.sha256(f"{train_key}:{validation_key}".encode()).hexdigest()[:16]
    return FineTuningData(config.label(), kind, train, validation, fingerprint)


def load_text_blocks(text: TextSource, tokenizer, context_length: int, local_file: Optional[Path] = None) -> tuple[PackedBlocks, str]:
    """Packed blocks of a text source (the forgetting text, the replay text) and their cache key.

    `local_file` stands in for an `embedded:` source (the caller resolves it). A local file that
    has no split named `text.split` is read whole ('train'). Problems are UserErrors naming the
    source's own keys (`forget.split`, `mitigation.replay_text_field`, ...).
    """
    source = text.source
    if local_file is not None:
        records = _load_local(Path(local_file), "train", text.key("source"))
    else:
        records = load_split(source, text.split, text.hub_config, text.key("source"))
        if records is None and is_local_path(source, SUFFIX_TO_BUILDER):
            records = load_split(source, "train", text.hub_config, text.key("source"))
        if records is None:
            raise UserError(f"{text.key('split')}: '{source}' has no split '{text.split}'")
    if text.text_field not in records.column_names:
        raise UserError(
            f"{text.key('text_field')}: column '{text.text_field}' is not in '{source}' (columns: {', '.join(records.column_names)})"
        )
    return _cached_pack(records, "text", DataConfig(format="text", text_field=text.text_field), tokenizer, context_length)


def load_forget_blocks(
    config: ForgetConfig, tokenizer, context_length: int, embedded_forget_text: Optional[Path]
) -> tuple[PackedBlocks, str]:
    """The first `num_sequences` packed blocks of the forgetting text, and their fingerprint."""
    source = config.source
    if source == f"{EMBEDDED_SCHEME}forget" and embedded_forget_text is None:
        raise UserError(
            "forget.source: 'embedded:forget' is the embedded base's held-out text; with another model "
            "give a local text file or a hub data set (e.g. wikitext, hub_config wikitext-103-raw-v1)"
        )
    local_file = embedded_forget_text if source == f"{EMBEDDED_SCHEME}forget" else None
    blocks, key = load_text_blocks(config.text_source(), tokenizer, context_length, local_file)
    if len(blocks) < config.num_sequences:
        raise UserError(
            f"forget.num_sequences: '{source}' packs into only {len(blocks)} sequences of {context_length} tokens; "
            f"lower forget.num_sequences to at most {len(blocks)}"
        )
    chosen = PackedBlocks(blocks.input_ids[: config.num_sequences], blocks.labels[: config.num_sequences])
    return chosen, f"{key}:{config.num_sequences}"


def load_replay_blocks(
    config: MitigationConfig, forget: ForgetConfig, tokenizer, context_length: int, embedded_base: Optional[str]
) -> tuple[PackedBlocks, str]:
    """Packed blocks of the replay text (pretraining-domain text mixed into training batches).

    `embedded:pretrain` is the embedded base's own pretraining documents (`embedded_base` names
    the base; None for other bases). The forgetting text is refused as replay text: training on
    it would hide forgetting instead of preventing it.
    """
    source, key = config.replay_source, "mitigation.replay_source"
    if source == f"{EMBEDDED_SCHEME}forget" or (source == forget.source and config.replay_split == forget.split):
        raise UserError(
            f"{key}: '{source}' is the forgetting text (forget.source); replaying it would train on what forgetting "
            "is measured on. Use pretraining-domain text that is not the evaluation text"
        )
    local_file = None
    if source == f"{EMBEDDED_SCHEME}pretrain":
        if embedded_base is None:
            raise UserError(
                f"{key}: 'embedded:pretrain' is the embedded base's pretraining text; with another model give a local "
                "text/jsonl file or a hub data set of pretraining-like text (not the forgetting text)"
            )
        from forgetlab.embedded import ensure_pretrain_documents

        local_file = ensure_pretrain_documents(embedded_base)
    blocks, packed_key = load_text_blocks(config.replay_text_source(), tokenizer, context_length, local_file)
    if len(blocks) == 0:
        raise UserError(f"{key}: '{source}' has fewer tokens than one context ({context_length}); give more text")
    return blocks, packed_key
