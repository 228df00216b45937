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
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from forgetlab.config import DataConfig, ForgetConfig, MitigationConfig, TextSource
from forgetlab.errors import UserError
from forgetlab.locations import cache_root
from forgetlab.utils.files import write_atomic
from forgetlab.utils.json_lines import json_error_location
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
SUBSET_SEED = 0  # fixed, not the run's: every run of a sweep trains on the same subset
AUTO_SUBSET_MIN_ROWS = 100_000  # `max_examples: auto` leaves smaller splits whole (results stay as they were)
TOKENS_MARGIN = 2.0  # auto subset: twice the tokens the run consumes
SAMPLE_ROWS = 256  # rows tokenized to estimate tokens per example
STREAM_SHUFFLE_BUFFER = 10_000


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
    stats: Optional["PackStats"] = None  # examples and tokens tokenized for this run (0 from the packed cache)


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


def _load_local(path: Path, split: str, key: str, streaming: bool = False) -> Optional["datasets.Dataset"]:  # noqa: F821
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
        return datasets.load_dataset(
            builder, data_files={split: str(file)}, split=split, streaming=streaming, **options
        )
    except UserError:
        raise
    except Exception as error:  # datasets raises many types for malformed files
        cause = error
        while cause.__cause__ is not None or cause.__context__ is not None:  # the parser's own words
            cause = cause.__cause__ or cause.__context__
        where = json_error_location(file) if builder == "json" else None
        problem = where or first_line(cause)
        raise UserError(
            f"{key}: could not read '{file}' as {builder}: {problem}; fix the file or give another {key}"
        ) from None
    finally:
        library_logger.setLevel(level)


def _load_hub(name: str, hub_config: Optional[str], split: str, key: str, streaming: bool = False):
    import datasets

    from forgetlab.finetune.hub import require_hub

    require_hub(key, name, "data set")  # fails at once offline, instead of a minute of retries
    try:
        return datasets.load_dataset(name, hub_config, split=split, streaming=streaming)
    except ValueError as error:
        if "split" in str(error).lower() or "Unknown split" in str(error):
            return None
        raise UserError(f"{key}: could not load hub data set '{name}': {first_line(error)}") from None
    except Exception as error:
        raise UserError(
            f"{key}: '{name}' is not a local file and could not be loaded from the hub "
            f"({type(error).__name__}); give an existing local path, or go online"
        ) from None


def load_split(source: str, split: str, hub_config: Optional[str], key: str, streaming: bool = False):
    """Records of one split of a source (an IterableDataset when `streaming`), or None if it has no such split."""
    if source.startswith(EMBEDDED_SCHEME):
        from forgetlab.embedded import ensure_embedded_dataset

        embedded = ensure_embedded_dataset(source[len(EMBEDDED_SCHEME) :])
        path = {"train": embedded.train_path}.get(split)
        if split in VALIDATION_SPLIT_ALIASES:
            path = embedded.validation_path
        return None if path is None else _load_local(Path(path), "train", key, streaming)
    if is_local_path(source, SUFFIX_TO_BUILDER):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"{key}: '{source}' does not exist; give an existing file or folder, or a hub name")
        return _load_local(path, split, key, streaming)
    return _load_hub(source, hub_config, split, key, streaming)


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


class ExampleTokenizer:
    """Turns a batch of rows into per-example `input_ids` and `labels` (for `datasets.Dataset.map`).

    A class, not a closure: `datasets` hashes it (tokenizer included) into the fingerprint that keys
    its cache, and can send it to worker processes (`data.num_proc`). Every example ends with EOS.
    """

    def __init__(self, kind: str, config: DataConfig, tokenizer):
        self.kind, self.tokenizer = kind, tokenizer
        self.text_field, self.prompt_field, self.response_field = (
            config.text_field,
            config.prompt_field,
            config.response_field,
        )
        self.template, self.system_prompt, self.system_field = (
            config.template,
            config.system_prompt,
            config.system_field,
        )

    def __call__(self, batch: dict[str, list]) -> dict[str, list[list[int]]]:
        eos = self.tokenizer.eos_token_id
        if self.kind == "text":
            texts = [str(text) if text is not None else "" for text in batch[self.text_field]]
            ids = [tokens + [eos] if text.strip() else [] for text, tokens in zip(texts, self._encode(texts))]
            return {"input_ids": ids, "labels": [list(row) for row in ids]}
        if self.template == "chat":
            return self._chat(batch)
        prompts = self._encode([self.template.format(prompt=prompt) for prompt in batch[self.prompt_field]])
        responses = self._encode([str(response) for response in batch[self.response_field]])
        return {
            "input_ids": [prompt + response + [eos] for prompt, response in zip(prompts, responses)],
            "labels": [[IGNORE_INDEX] * len(prompt) + response + [eos] for prompt, response in zip(prompts, responses)],
        }

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    def _chat(self, batch: dict[str, list]) -> dict[str, list[list[int]]]:
        """The tokenizer's chat template: loss on the assistant turn only (and the EOS after it).

        The prompt is the conversation up to the assistant's turn (with the generation prompt), the
        full text adds the assistant's answer; labels are masked over their common prefix.
        """
        eos = self.tokenizer.eos_token_id
        rows = len(batch[self.prompt_field])
        systems = batch[self.system_field] if self.system_field else [None] * rows
        input_ids, labels = [], []
        for prompt, response, system in zip(batch[self.prompt_field], batch[self.response_field], systems):
            system = str(system).strip() if system and str(system).strip() else self.system_prompt
            user = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": str(prompt)}
            ]
            shown = self.tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
            whole = self.tokenizer.apply_chat_template(
                user + [{"role": "assistant", "content": str(response)}], tokenize=False
            )
            # Rendered, then tokenized without special tokens: the template writes its own BOS (as the probes do).
            prompt_ids, ids = self._encode([shown, whole])
            shared = next(
                (i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids))
            )
            if not ids or ids[-1] != eos:
                ids = ids + [eos]
            input_ids.append(ids)
            labels.append([IGNORE_INDEX] * shared + ids[shared:])
        return {"input_ids": input_ids, "labels": labels}


def check_chat_template(config: DataConfig, tokenizer, kind: str, columns: list[str]) -> None:
    if config.template != "chat" or kind != "instruction":
        return
    if config.system_field and config.system_field not in columns:
        raise UserError(
            f"data.system_field: column '{config.system_field}' is not in the data (columns: {', '.join(columns)})"
        )
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "data.template: 'chat' needs the tokenizer's chat template and this model's tokenizer has none; "
            "give a text template containing {prompt} (e.g. the default) or a chat model"
        )


PROGRESS_MIN_EXAMPLES = 20_000


def tokenize_examples(records, kind: str, config: DataConfig, tokenizer, progress: bool = False):
    """`records` tokenized by `datasets.map` (batched, `num_proc`, cached by fingerprint): input_ids, labels."""
    import datasets

    # A bar only where tokenizing takes a while: on a small split it would be noise above the
    # summary (or above a one-line error).
    progress = progress and len(records) >= PROGRESS_MIN_EXAMPLES
    shown = datasets.utils.are_progress_bars_disabled() is False
    if progress and not shown:
        datasets.enable_progress_bars()
    try:
        return records.map(
            ExampleTokenizer(kind, config, tokenizer),
            batched=True,
            batch_size=1000,
            num_proc=config.num_proc if config.num_proc and config.num_proc > 1 and len(records) > 1000 else None,
            remove_columns=list(records.column_names),
            desc=f"Tokenizing {len(records):,} examples",
        )
    finally:
        if progress and not shown:
            datasets.disable_progress_bars()


def pack_tokenized(tokenized, context_length: int) -> PackedBlocks:
    """Concatenate the examples' tokens (Arrow, no Python loop) and cut them into full blocks."""
    import pyarrow.compute as pc

    table = tokenized.with_format("arrow")[:]
    ids = pc.list_flatten(table.column("input_ids")).to_numpy(zero_copy_only=False)
    labels = pc.list_flatten(table.column("labels")).to_numpy(zero_copy_only=False)
    return pack(torch.from_numpy(ids.astype("int64")), torch.from_numpy(labels.astype("int64")), context_length)


def pack(ids, labels, context_length: int) -> PackedBlocks:
    """Cut the streams into full blocks; the ragged tail is dropped (it is less than one block)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    labels = torch.as_tensor(labels, dtype=torch.long)
    num_blocks = len(ids) // context_length
    usable = num_blocks * context_length
    return PackedBlocks(ids[:usable].view(num_blocks, context_length), labels[:usable].view(num_blocks, context_length))


def _records_fingerprint(records) -> str:
    fingerprint = getattr(records, "_fingerprint", None)
    if fingerprint:
        return str(fingerprint)
    digest = hashlib.sha256()
    for row in records:
        digest.update(repr(sorted(row.items())).encode())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    digest = (
        hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
        if hasattr(tokenizer, "backend_tokenizer")
        else hashlib.sha256(repr(tokenizer).encode())
    )
    if getattr(tokenizer, "chat_template", None):
        digest.update(str(tokenizer.chat_template).encode())
    return digest.hexdigest()[:16]


@dataclass
class PackStats:
    """What packing cost: examples and tokens tokenized (0 when the packed cache answered)."""

    examples: int = 0
    tokens: int = 0


def _cached_pack(
    records,
    kind: str,
    config: DataConfig,
    tokenizer,
    context_length: int,
    progress: bool = False,
    stats: Optional[PackStats] = None,
) -> tuple[PackedBlocks, str]:
    parts = [
        PACKING_VERSION,
        _records_fingerprint(records),
        tokenizer_fingerprint(tokenizer),
        kind,
        str(context_length),
    ]
    if kind == "text":
        parts.append(config.text_field)
    else:
        parts += [config.prompt_field, config.response_field, config.template]
        if config.template == "chat":
            parts += [config.system_prompt or "", config.system_field or ""]
    key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]
    cache_file = packed_cache_dir() / f"{key}.pt"
    if cache_file.exists():
        stored = torch.load(cache_file, weights_only=True)
        return PackedBlocks(stored["input_ids"], stored["labels"]), key
    tokenized = tokenize_examples(records, kind, config, tokenizer, progress)
    blocks = pack_tokenized(tokenized, context_length)
    if stats is not None:
        stats.examples += len(records)
        stats.tokens += _token_count(tokenized)
    stored = {"input_ids": blocks.input_ids, "labels": blocks.labels}
    write_atomic(
        cache_file, lambda temporary: torch.save(stored, temporary)
    )  # a concurrent run never reads half a file
    return blocks, key


def _token_count(tokenized) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.list_value_length(tokenized.with_format("arrow")[:].column("input_ids"))).as_py() or 0)


def examples_needed(sample, kind: str, config: DataConfig, tokenizer, tokens_needed: int) -> int:
    """Examples that hold `tokens_needed` × margin tokens, from a sample's mean length; a power of two
    so that runs with similar budgets share one subset (and one cache entry)."""
    lengths = [len(ids) for ids in ExampleTokenizer(kind, config, tokenizer)(sample)["input_ids"]]
    mean = max(1.0, sum(lengths) / max(1, len(lengths)))
    return 1 << max(0, math.ceil(math.log2(max(1.0, tokens_needed * TOKENS_MARGIN / mean))))


def _subset_size(records, kind: str, config: DataConfig, tokenizer, tokens_needed: Optional[int]) -> Optional[int]:
    """How many training examples to tokenize: None = all of them."""
    if config.max_examples is None or (config.max_examples == "auto" and tokens_needed is None):
        return None
    if isinstance(config.max_examples, int):
        return config.max_examples if len(records) > config.max_examples else None
    if len(records) <= AUTO_SUBSET_MIN_ROWS:
        return None
    needed = examples_needed(records.shuffle(seed=SUBSET_SEED)[:SAMPLE_ROWS], kind, config, tokenizer, tokens_needed)
    return needed if len(records) > needed else None


def _seeded_subset(records, size: Optional[int]):
    return records if size is None or len(records) <= size else records.shuffle(seed=SUBSET_SEED).select(range(size))


def _streamed(config: DataConfig, split: str, tokenizer, tokens_needed: Optional[int]):
    """Read only the examples the run uses from a stream (seeded shuffle buffer), as a Dataset."""
    import datasets

    stream = load_split(config.source, split, config.hub_config, "data.source", streaming=True)
    if stream is None:
        return None
    if config.max_examples is None or (config.max_examples == "auto" and tokens_needed is None):
        raise UserError("data.streaming: a stream needs data.max_examples ('auto' or a number of examples), not null")
    rows = iter(stream.shuffle(seed=SUBSET_SEED, buffer_size=STREAM_SHUFFLE_BUFFER))
    sample = list(itertools.islice(rows, SAMPLE_ROWS))
    if not sample:
        return datasets.Dataset.from_list([])
    if isinstance(config.max_examples, int):
        count = config.max_examples
    else:
        columns = {key: [row[key] for row in sample] for key in sample[0]}
        count = examples_needed(columns, _detect_kind(list(sample[0]), config), config, tokenizer, tokens_needed)
    records = datasets.Dataset.from_list(sample[:count] + list(itertools.islice(rows, max(0, count - len(sample)))))
    # An in-memory Dataset gets a random fingerprint; what was read is fixed by these, so the packed cache can hit.
    identity = f"stream:{config.source}:{config.hub_config}:{split}:{SUBSET_SEED}:{count}"
    records._fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return records


def _read_splits(config: DataConfig, tokenizer, tokens_needed: Optional[int]):
    read = (lambda split: _streamed(config, split, tokenizer, tokens_needed)) if config.streaming else (
        lambda split: load_split(config.source, split, config.hub_config, "data.source")
    )  # fmt: skip
    train_records = read(config.train_split)
    if train_records is None:
        raise UserError(f"data.train_split: '{config.source}' has no split '{config.train_split}'")
    validation_records = read(config.validation_split) if config.validation_split else None
    if len(train_records) == 0:
        raise UserError(f"data.source: '{config.source}' is empty; it needs at least a few examples")
    if validation_records is None:
        # A fixed seed (not the run's) so that every run of a sweep is scored on the same held-out text.
        if len(train_records) < 2:
            raise UserError(
                f"data.source: '{config.source}' has {len(train_records)} example(s); need at least 2 to hold some out"
            )
        split = train_records.train_test_split(test_size=config.validation_fraction, seed=0, shuffle=True)
        train_records, validation_records = split["train"], split["test"]
    return train_records, validation_records


def load_fine_tuning_data(
    config: DataConfig, tokenizer, context_length: int, tokens_needed: Optional[int] = None, progress: bool = False
) -> FineTuningData:
    """Train and held-out blocks of the fine-tuning data.

    `tokens_needed` (training tokens the run consumes) sizes `max_examples: auto`; only that seeded
    subset, and a matching share of the held-out split, is tokenized.
    """
    train_records, validation_records = _read_splits(config, tokenizer, tokens_needed)
    kind = _detect_kind(list(train_records.column_names), config)
    check_chat_template(config, tokenizer, kind, list(train_records.column_names))
    size = None if config.streaming else _subset_size(train_records, kind, config, tokenizer, tokens_needed)
    if size is not None:
        train_records = _seeded_subset(train_records, size)
        validation_records = _seeded_subset(
            validation_records, max(SAMPLE_ROWS, math.ceil(size * config.validation_fraction))
        )
    stats = PackStats()
    train, train_key = _cached_pack(train_records, kind, config, tokenizer, context_length, progress, stats)
    validation, validation_key = _cached_pack(
        validation_records, kind, config, tokenizer, context_length, progress, stats
    )
    for name, blocks in (("training", train), ("held-out", validation)):
        if len(blocks) == 0:
            raise UserError(
                f"data.source: the {name} split of '{config.source}' has fewer tokens than one context "
                f"({context_length}); add data or lower train.context_length"
            )
    fingerprint = hashlib.sha256(f"{train_key}:{validation_key}".encode()).hexdigest()[:16]
    return FineTuningData(config.label(), kind, train, validation, fingerprint, stats)


def load_text_blocks(
    text: TextSource, tokenizer, context_length: int, local_file: Optional[Path] = None
) -> tuple[PackedBlocks, str]:
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
    return _cached_pack(
        records, "text", DataConfig(format="text", text_field=text.text_field), tokenizer, context_length
    )


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
