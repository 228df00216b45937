"""The embedded base and data sets: built offline, deterministic, cached, and with a clean held-out split.

Everything here uses `embedded-tiny` (seconds to build) in private cache folders.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from forgetlab.embedded import (  # noqa: E402
    DOCUMENT_SEPARATOR,
    EMBEDDED_DATASETS,
    TINY_SPEC,
    collect_docstrings,
    ensure_embedded_base,
    ensure_embedded_dataset,
    split_documents,
)
from forgetlab.embedded import base as base_module  # noqa: E402
from forgetlab.embedded.cache import build_once  # noqa: E402
from forgetlab.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache for this module, holding one tiny base; yields (cache folder, base)."""
    folder = tmp_path_factory.mktemp("embedded-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGETLAB_CACHE", str(folder))
        built = ensure_embedded_base("embedded-tiny", progress=False)
        yield folder, built


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_heldout_docstrings_never_in_pretraining_text(cache):
    _, built = cache
    corpus = collect_docstrings()
    assert len(corpus.heldout) > 100 and len(corpus.pretrain) > 20 * len(corpus.heldout)
    pretrain_text = corpus.pretrain_text
    for document in corpus.heldout:
        assert document not in pretrain_text
    # The forgetting text the base ships is exactly the held-out split, readable back document by document.
    forget_text = built.forget_text_path.read_text(encoding="utf-8")
    assert tuple(split_documents(forget_text)) == corpus.heldout
    assert [row["text"] for row in _read_jsonl(built.forget_documents_path)] == list(corpus.heldout)
    assert all(DOCUMENT_SEPARATOR not in document for document in corpus.heldout)
    # The replay text is the pretraining split, shipped beside the base.
    assert [row["text"] for row in _read_jsonl(built.folder / "pretrain.jsonl")] == list(corpus.pretrain)


def test_corpus_fingerprint_is_stable(cache):
    _, built = cache
    first = collect_docstrings()
    again = collect_docstrings.__wrapped__()  # bypass the in-process memo: really read the stdlib again
    assert again.fingerprint == first.fingerprint == built.corpus_fingerprint
    assert again.heldout == first.heldout


def test_tiny_base_builds_and_learns(cache):
    _, built = cache
    info = built.info()
    assert info["tokens_seen"] == TINY_SPEC.steps * TINY_SPEC.batch_size * TINY_SPEC.context
    assert built.heldout_loss < math.log(TINY_SPEC.vocab) - 1.0
    assert info["uniform_loss"] == pytest.approx(math.log(TINY_SPEC.vocab))
    assert built.folder.name.startswith("embedded-tiny-") and built.corpus_fingerprint[:12] in built.folder.name


def test_second_call_is_a_cache_hit(cache, monkeypatch):
    folder, built = cache
    monkeypatch.setenv("FORGETLAB_CACHE", str(folder))

    def must_not_build(*args, **kwargs):
        raise AssertionError("a cached base was rebuilt")

    monkeypatch.setattr(base_module, "_build", must_not_build)
    again = ensure_embedded_base("embedded-tiny", progress=False)
    assert again == built


def test_same_spec_gives_identical_weights(cache, tmp_path, monkeypatch):
    import torch

    _, built = cache
    monkeypatch.setenv("FORGETLAB_CACHE", str(tmp_path))
    callers_threads = torch.get_num_threads()
    torch.set_num_threads(2 if callers_threads != 2 else 1)  # as a sweep job with its own share of the cores
    try:
        rebuilt = ensure_embedded_base("embedded-tiny", progress=False)  # the spec sets its own threads
    finally:
        torch.set_num_threads(callers_threads)
    assert rebuilt.folder != built.folder
    assert rebuilt.base_fingerprint == built.base_fingerprint
    assert rebuilt.heldout_loss == built.heldout_loss


def test_model_and_tokenizer_load_with_auto_classes(cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, built = cache
    model = AutoModelForCausalLM.from_pretrained(built.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(built.model_dir)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.eos_token_id == tokenizer.eos_token_id
    text = "Return a new list containing the items of the iterable in sorted order."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == text
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert float(loss) < math.log(TINY_SPEC.vocab)


def test_base_build_help_names_every_embedded_base():
    from forgetlab.commands.base import EMBEDDED_BASE_NAMES
    from forgetlab.embedded import BASE_SPECS

    assert EMBEDDED_BASE_NAMES == tuple(BASE_SPECS)


def test_unknown_base_name_is_a_user_error():
    with pytest.raises(UserError, match="embedded-tiny"):
        ensure_embedded_base("embedded-huge", progress=False)


@pytest.mark.parametrize("name", EMBEDDED_DATASETS)
def test_embedded_datasets_have_disjoint_nonempty_splits(cache, monkeypatch, name):
    folder, _ = cache
    monkeypatch.setenv("FORGETLAB_CACHE", str(folder))
    dataset = ensure_embedded_dataset(name)
    train, validation = _read_jsonl(dataset.train_path), _read_jsonl(dataset.validation_path)
    fields = {"text": {"text"}, "instruction": {"prompt", "response"}}[dataset.kind]
    assert all(set(row) == fields and all(row.values()) for row in train + validation)
    key = "text" if dataset.kind == "text" else "prompt"
    assert not {row[key] for row in train} & {row[key] for row in validation}
    if name == "pydoc":  # all of pydoc_data.topics, halved: forgetting text ('test') and replay text ('train')
        from pydoc_data.topics import topics

        assert 0.35 < len(validation) / (len(train) + len(validation)) < 0.65
        assert sum(len(row["text"]) for row in train + validation) > 0.95 * sum(len(text) for text in topics.values())
    else:  # fine-tuning data: ~2 MB to train on, a few percent held out for L_ft
        assert len(train) > 10 * len(validation) > 0
        assert 1e6 < dataset.train_path.stat().st_size < 3.5e6
    assert ensure_embedded_dataset(name) == dataset  # cached: same files, same fingerprint


def test_code_dataset_holds_no_docstrings(cache, monkeypatch):
    folder, _ = cache
    monkeypatch.setenv("FORGETLAB_CACHE", str(folder))
    code = ensure_embedded_dataset("code").train_path.read_text(encoding="utf-8")
    corpus = collect_docstrings()
    long_heldout = [doc for doc in corpus.heldout if len(doc) > 200]
    assert long_heldout and not any(json.dumps(doc)[1:-1] in code for doc in long_heldout)


def test_unknown_dataset_name_is_a_user_error():
    with pytest.raises(UserError, match="code, instruct"):
        ensure_embedded_dataset("news")


def test_build_once_builds_once_under_concurrency(tmp_path):
    calls: list[int] = []

    def slow_build(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        (folder / "done").write_text("yes")

    final = tmp_path / "entry"
    threads = [threading.Thread(target=build_once, args=(final, slow_build)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and (final / "done").read_text() == "yes"
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []


def test_cli_base_build_and_info(cache, monkeypatch):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    folder, built = cache
    monkeypatch.setenv("FORGETLAB_CACHE", str(folder))
    runner = CliRunner(env={"COLUMNS": "400"})  # rich wraps tables at 80 columns otherwise
    result = runner.invoke(app, ["base", "build", "--name", "embedded-tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "held-out loss" in result.output and str(built.folder) in result.output
    result = runner.invoke(app, ["base", "info"])
    assert result.exit_code == 0, result.output
    assert "embedded-tiny" in result.output
