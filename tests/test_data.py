"""Loading real data from local files: every supported format, text and instruction fields, packing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from forgetlab.config import DataConfig, ForgetConfig
from forgetlab.errors import UserError
from forgetlab.finetune.data import IGNORE_INDEX, load_fine_tuning_data, load_forget_blocks

CONTEXT = 16
SENTENCES = [f"The number {i} is followed by {i + 1} and preceded by {i - 1}." for i in range(60)]


@pytest.fixture(scope="module")
def tokenizer(forgetlab_cache):
    from transformers import AutoTokenizer

    from forgetlab.embedded.base import ensure_embedded_base

    return AutoTokenizer.from_pretrained(ensure_embedded_base("embedded-tiny", progress=False).model_dir)


def write_text_files(folder, kind):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"text": s} for s in SENTENCES]
    if kind == "jsonl":
        (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        return folder / "data.jsonl"
    if kind == "json":
        (folder / "data.json").write_text(json.dumps(rows))
        return folder / "data.json"
    if kind == "csv":
        pd.DataFrame(rows).to_csv(folder / "data.csv", index=False)
        return folder / "data.csv"
    if kind == "parquet":
        pd.DataFrame(rows).to_parquet(folder / "data.parquet")
        return folder / "data.parquet"
    (folder / "data.txt").write_text("\n\n".join(SENTENCES))
    return folder / "data.txt"


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet", "txt"])
def test_text_file_of_each_format_loads_and_packs(tmp_path, tokenizer, kind):
    path = write_text_files(tmp_path / kind, kind)
    data = load_fine_tuning_data(DataConfig(source=str(path)), tokenizer, CONTEXT)
    assert data.kind == "text"
    assert data.train.input_ids.shape[1] == CONTEXT
    assert len(data.train) > len(data.validation) > 0
    # Every token is trained on for text data.
    assert bool((data.train.labels == data.train.input_ids).all())
    decoded = tokenizer.decode(data.train.input_ids[0])
    assert "number" in decoded


def test_folder_with_split_files_uses_its_validation(tmp_path, tokenizer):
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in SENTENCES[:50]))
    (folder / "validation.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in SENTENCES[50:]))
    data = load_fine_tuning_data(DataConfig(source=str(folder)), tokenizer, CONTEXT)
    validation_text = tokenizer.decode(data.validation.input_ids.flatten())
    assert "number 55" in validation_text
    assert "number 55 " not in tokenizer.decode(data.train.input_ids.flatten())


def test_instruction_data_trains_on_the_response_only(tmp_path, tokenizer):
    path = tmp_path / "instruct.jsonl"
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"It is {2 * i}."} for i in range(80)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    config = DataConfig(source=str(path), prompt_field="question", response_field="answer", template="Q: {prompt}\nA: ")
    data = load_fine_tuning_data(config, tokenizer, CONTEXT)
    assert data.kind == "instruction"
    trained = data.train.labels != IGNORE_INDEX
    assert 0 < float(trained.float().mean()) < 1
    # The trained tokens decode to answers only, never to the template or the question.
    trained_text = tokenizer.decode(data.train.input_ids[trained])
    assert "It is" in trained_text
    assert "plus" not in trained_text and "Q:" not in trained_text


def test_local_text_file_as_forgetting_text(tmp_path, tokenizer):
    path = write_text_files(tmp_path / "forget", "txt")
    blocks, fingerprint = load_forget_blocks(ForgetConfig(source=str(path), num_sequences=3), tokenizer, CONTEXT, None)
    assert tuple(blocks.input_ids.shape) == (3, CONTEXT)
    assert fingerprint


@pytest.mark.parametrize(
    "make_config, expected",
    [
        (lambda tmp: DataConfig(source=str(tmp / "missing.jsonl")), "does not exist"),
        (lambda tmp: DataConfig(source=str(tmp / "empty.jsonl")), "is empty"),
        (lambda tmp: DataConfig(source=str(tmp / "data.jsonl"), text_field="body", format="text"), "column 'body'"),
        (lambda tmp: DataConfig(source=str(tmp / "data.xlsx")), "unsupported file type"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, tokenizer, make_config, expected):
    write_text_files(tmp_path, "jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "data.xlsx").write_text("not really")
    with pytest.raises(UserError, match=expected):
        load_fine_tuning_data(make_config(tmp_path), tokenizer, CONTEXT)


def test_forgetting_text_too_short_says_how_many_sequences_fit(tmp_path, tokenizer):
    path = tmp_path / "short.txt"
    path.write_text("Only a few words here.")
    with pytest.raises(UserError, match="lower forget.num_sequences"):
        load_forget_blocks(ForgetConfig(source=str(path), num_sequences=50), tokenizer, CONTEXT, None)


# ----------------------------------------------------------------------------- hub-scale data: subsets, streams


def _numbered_rows(path, count):
    path.write_text(
        "".join(json.dumps({"text": f"Row {i} says {i * 7 % 13} and {i % 5}."}) + "\n" for i in range(count))
    )
    return path


def test_max_examples_tokenizes_only_a_seeded_subset(tmp_path, tokenizer):
    path = _numbered_rows(tmp_path / "rows.jsonl", 400)
    whole = load_fine_tuning_data(DataConfig(source=str(path), max_examples=None), tokenizer, CONTEXT)
    subset = load_fine_tuning_data(DataConfig(source=str(path), max_examples=64), tokenizer, CONTEXT)
    again = load_fine_tuning_data(DataConfig(source=str(path), max_examples=64), tokenizer, CONTEXT)
    assert whole.stats.examples == 400
    assert subset.stats.examples == 64  # the held-out 5% (20 rows, fewer than the cap) came from the packed cache
    assert subset.stats.tokens < whole.stats.tokens / 3
    assert again.stats.tokens == 0  # the packed cache answered
    assert again.train.input_ids.equal(subset.train.input_ids)
    assert subset.fingerprint != whole.fingerprint


def test_auto_subset_is_sized_from_the_tokens_the_run_needs(tmp_path, tokenizer, monkeypatch):
    import forgetlab.finetune.data as data_module

    path = _numbered_rows(tmp_path / "rows.jsonl", 3000)
    monkeypatch.setattr(data_module, "AUTO_SUBSET_MIN_ROWS", 1000)  # stands for a hub-sized split
    needed = 40 * CONTEXT
    data = load_fine_tuning_data(DataConfig(source=str(path)), tokenizer, CONTEXT, tokens_needed=needed)
    train_examples = data.stats.examples - 150  # the held-out 5% (150 rows) is under the 256-row cap: kept whole
    assert train_examples & (train_examples - 1) == 0  # a power of two
    assert train_examples < 3000 * 0.95
    assert data.train.input_ids.numel() >= needed * data_module.TOKENS_MARGIN * 0.8
    small = load_fine_tuning_data(
        DataConfig(source=str(_numbered_rows(tmp_path / "few.jsonl", 900))), tokenizer, CONTEXT, tokens_needed=needed
    )
    assert small.stats.examples == 900  # below AUTO_SUBSET_MIN_ROWS nothing changes


def test_streaming_reads_only_the_examples_used(tmp_path, tokenizer):
    path = _numbered_rows(tmp_path / "rows.jsonl", 2000)
    config = DataConfig(source=str(path), streaming=True, max_examples=300)
    data = load_fine_tuning_data(config, tokenizer, CONTEXT)
    assert data.stats.examples == 300  # 285 train + 15 held out, from a stream of 2000
    assert len(data.validation) > 0
    second = load_fine_tuning_data(config, tokenizer, CONTEXT)
    assert second.stats.tokens == 0 and second.train.input_ids.equal(data.train.input_ids)  # same rows, cache hit
    with pytest.raises(UserError, match="data.streaming: a stream needs data.max_examples"):
        load_fine_tuning_data(DataConfig(source=str(path), streaming=True, max_examples=None), tokenizer, CONTEXT)


def test_parallel_tokenization_gives_the_same_blocks(tmp_path, tokenizer, monkeypatch):
    import forgetlab.finetune.data as data_module

    path = _numbered_rows(tmp_path / "rows.jsonl", 2100)
    serial = load_fine_tuning_data(DataConfig(source=str(path), max_examples=None), tokenizer, CONTEXT)
    monkeypatch.setattr(data_module, "packed_cache_dir", lambda: tmp_path / "other-cache")
    parallel = load_fine_tuning_data(DataConfig(source=str(path), max_examples=None, num_proc=2), tokenizer, CONTEXT)
    assert parallel.stats.tokens == serial.stats.tokens > 0
    assert parallel.train.input_ids.equal(serial.train.input_ids) and parallel.train.labels.equal(serial.train.labels)


@pytest.mark.parametrize(
    "name, text, said",
    [
        (
            "bad.jsonl",
            '{"text": "a"}\n{"text": "b"}\n{"text": "c"} x\n',
            'line 3 is not one JSON object (Extra data at column 15): {"text": "c"} x',
        ),
        (
            "blank.jsonl",
            '{"text": "a"}\n\n{"text": unquoted\n',
            "line 3 is not one JSON object (Expecting value at column 10)",
        ),
        (
            "list.json",
            '[{"text": "a"},\n {"text": "b"}\n {"text": "c"}]\n',
            "line 3, column 2: Expecting ',' delimiter",
        ),
    ],
)
def test_a_malformed_json_file_is_named_with_its_line(tmp_path, name, text, said):
    """datasets said "Trailing data at position 59": an offset into a chunk, no line (issue 28)."""
    from forgetlab.finetune.data import load_split
    from forgetlab.probes.sources import read_records

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError) as raised:
        load_split(str(path), "train", None, "data.source")
    assert str(path) in raised.value.message and said in raised.value.message and "\n" not in raised.value.message
    with pytest.raises(UserError) as raised:
        read_records(str(path), None, "test", "probes.multiple_choice.source")
    assert said in raised.value.message
