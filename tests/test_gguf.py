"""GGUF files (llama.cpp, Ollama) as bases: converted once into the cache, then trained like any checkpoint.

The files are written by the tests (tests/tiny_gguf.py) from tiny random-initialised Llamas, with
llama.cpp's layout, tokenizer and chat template, in float32 and quantized to Q8_0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_helpers import invoke
from tiny import R4
from tiny_checkpoints import save_checkpoint, tiny_tokenizer, write_text_data
from tiny_gguf import write_tiny_gguf

from forgetlab.config import load_run_config
from forgetlab.errors import UserError
from forgetlab.finetune.recipe import execute_run

pytest.importorskip("gguf")

SHORT = [
    "train.context_length=32", "train.batch_size=4", "train.steps=2", "train.eval_every=1", "train.warmup_steps=1",
    "train.lr=1e-2", "train.ft_eval_sequences=4", "forget.num_sequences=4", "forget.batch_size=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny Llama checkpoint, the same model as float32 and Q8_0 GGUF files, and local data."""
    root = tmp_path_factory.mktemp("gguf")
    checkpoint = save_checkpoint(root / "checkpoint", "llama", tiny_tokenizer())
    plain = write_tiny_gguf(checkpoint, root / "tiny-f32.gguf")
    quantized = write_tiny_gguf(checkpoint, root / "tiny-q8_0.gguf", quantize=True)
    data, forget = write_text_data(root / "data")
    return {"checkpoint": checkpoint, "f32": plain, "q8_0": quantized, "data": data, "forget": forget}


def _overrides(files, model: Path) -> list[str]:
    return [f"model.name={model}", f"data.source={files['data']}", f"forget.source={files['forget']}", *SHORT]


def test_a_quantized_gguf_file_trains_and_is_converted_once(files, workdir, monkeypatch):
    from mlflow.tracking import MlflowClient

    import forgetlab.finetune.gguf_base as gguf_base

    config = load_run_config(R4, [*_overrides(files, files["q8_0"]), "data.template=chat"])
    result = execute_run(config, progress=False)
    assert result.status == "FINISHED" and result.steps_done == 2
    assert result.first["forget_kl"] == pytest.approx(0.0, abs=1e-6) and result.last["forget_kl"] > 0
    [converted] = gguf_base.cached_gguf_checkpoints()
    assert converted["sha256"] == gguf_base.file_sha256(files["q8_0"], progress=False)
    assert converted["chat_template"] is True and converted["architecture"] == "llama"
    params = MlflowClient(result.tracking_uri).get_run(result.run_id).data.params
    assert params["fingerprint.base"] == f"gguf:{converted['sha256'][:16]}"

    def must_not_convert(*args, **kwargs):
        raise AssertionError("a converted GGUF file was converted again")

    monkeypatch.setattr(gguf_base, "_convert", must_not_convert)
    again = execute_run(config, progress=False)
    assert again.status == "FINISHED" and again.first == result.first


def test_the_converted_checkpoint_is_the_model_the_file_holds(files, forgetlab_cache, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetlab.finetune.gguf_base import ensure_gguf_checkpoint

    monkeypatch.setenv("FORGETLAB_CACHE", forgetlab_cache)
    converted = ensure_gguf_checkpoint(files["f32"], progress=False)
    original = AutoModelForCausalLM.from_pretrained(files["checkpoint"])
    loaded = AutoModelForCausalLM.from_pretrained(converted.folder)
    assert getattr(loaded.config, "quantization_config", None) is None  # a plain checkpoint, trainable and savable
    tokenizer, expected_tokenizer = (
        AutoTokenizer.from_pretrained(converted.folder),
        AutoTokenizer.from_pretrained(files["checkpoint"]),
    )
    text = "Return a new list containing all items from the iterable in ascending order."
    ids = expected_tokenizer(text, return_tensors="pt")["input_ids"]
    assert tokenizer(text)["input_ids"] == ids[0].tolist()
    assert tokenizer.chat_template == expected_tokenizer.chat_template  # the template comes from the file
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, original(ids).logits, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncated", "not gguf"])
def test_a_damaged_gguf_file_is_one_line_and_no_run(files, workdir, damage):
    broken = workdir / "broken.gguf"
    content = files["f32"].read_bytes()
    broken.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"PK\x03\x04" + content[4:])
    with pytest.raises(UserError) as error:
        execute_run(load_run_config(R4, _overrides(files, broken)), progress=False)
    message = str(error.value)
    assert "\n" not in message and "broken.gguf" in message
    assert ("not a GGUF file" in message) if damage == "not gguf" else ("could not read the GGUF file" in message)
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # refused before any run existed


def test_without_the_gguf_package_the_error_names_the_extra(files, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ImportError
    with pytest.raises(UserError, match=r"pip install 'forgetlab\[gguf\]'"):
        execute_run(load_run_config(R4, _overrides(files, files["f32"])), progress=False)


def test_a_missing_gguf_file_is_one_line_from_the_cli(files, workdir, capsys, monkeypatch):
    code, out, err = invoke(
        ["run", "--config", str(R4), *_overrides(files, workdir / "nowhere.gguf"), "--quiet"], capsys, monkeypatch
    )
    assert code == 2
    assert err.strip().count("\n") == 0 and "nowhere.gguf' does not exist" in err
