"""`data.template: chat`: instruction rows in the tokenizer's own chat format, loss on the assistant turn only."""

from __future__ import annotations

import json

import pytest
from tiny import R4
from tiny_checkpoints import save_checkpoint, tiny_tokenizer, write_text_data

from forgetlab.config import DataConfig, load_run_config
from forgetlab.errors import UserError
from forgetlab.finetune.data import IGNORE_INDEX, ExampleTokenizer, load_fine_tuning_data
from forgetlab.finetune.recipe import execute_run


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_only_the_assistant_turn_is_trained_token_by_token(tokenizer):
    config = DataConfig(template="chat", system_prompt="Answer briefly.")
    row = {"prompt": ["Which module splits text?"], "response": ["The textwrap module wraps it."]}
    encoded = ExampleTokenizer("instruction", config, tokenizer)(row)
    ids, labels = encoded["input_ids"][0], encoded["labels"][0]

    shown = "<|system|>\nAnswer briefly.<|end|>\n<|user|>\nWhich module splits text?<|end|>\n<|assistant|>\n"
    answer = "The textwrap module wraps it.<|end|>\n"
    prompt_ids = tokenizer(shown, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + answer_ids + [tokenizer.eos_token_id]
    for position, (token, label) in enumerate(zip(ids, labels)):
        if position < len(prompt_ids):
            assert label == IGNORE_INDEX, (position, tokenizer.decode([token]))
        else:
            assert label == token, (position, tokenizer.decode([token]))
    trained = [label for label in labels if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == answer + "</s>"


def test_a_row_system_field_overrides_the_config_system_prompt(tokenizer):
    config = DataConfig(template="chat", system_prompt="Default.", system_field="system")
    rows = {"prompt": ["Q1", "Q2"], "response": ["A1", "A2"], "system": ["Own one.", ""]}
    encoded = ExampleTokenizer("instruction", config, tokenizer)(rows)
    assert tokenizer.decode(encoded["input_ids"][0]).startswith("<|system|>\nOwn one.<|end|>")
    assert tokenizer.decode(encoded["input_ids"][1]).startswith("<|system|>\nDefault.<|end|>")


def test_packed_blocks_keep_the_chat_labels(tokenizer, tmp_path, forgetlab_cache):
    rows = [{"prompt": f"Question {i}?", "response": f"Answer number {i}."} for i in range(40)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = load_fine_tuning_data(DataConfig(source=str(path), template="chat"), tokenizer, 16)
    assert data.kind == "instruction"
    ids, labels = data.train.input_ids.flatten().tolist(), data.train.labels.flatten().tolist()
    trained_text = tokenizer.decode([label for label in labels if label != IGNORE_INDEX])
    assert "Answer number" in trained_text and "Question" not in trained_text and "<|user|>" not in trained_text
    assert "<|user|>" in tokenizer.decode(ids)


def test_a_tokenizer_without_chat_template_is_one_line(tmp_path, forgetlab_cache):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Q{i}", "response": f"A{i}"}) + "\n" for i in range(10)))
    with pytest.raises(UserError) as error:
        load_fine_tuning_data(DataConfig(source=str(path), template="chat"), tiny_tokenizer(chat_template=None), 16)
    assert str(error.value).startswith("data.template: 'chat' needs the tokenizer's chat template")
    assert "\n" not in str(error.value)


def test_a_chat_checkpoint_folder_fine_tunes_in_its_chat_format(tmp_path, workdir, tokenizer):
    folder = save_checkpoint(tmp_path / "chat-llama", "llama", tokenizer)
    data, forget = write_text_data(tmp_path / "data")
    overrides = [
        f"model.name={folder}", f"data.source={data}", "data.template=chat", "data.system_prompt=Be helpful.",
        f"forget.source={forget}", "train.context_length=32", "train.batch_size=4", "train.steps=4",
        "train.eval_every=2", "train.warmup_steps=1", "train.ft_eval_sequences=4", "forget.num_sequences=4",
        "forget.batch_size=2",
    ]  # fmt: skip
    result = execute_run(load_run_config(R4, overrides), progress=False)
    assert result.status == "FINISHED" and result.steps_done == 4
    assert result.first["forget_kl"] == pytest.approx(0.0, abs=1e-6)
    assert result.adapter_uri.endswith("/adapter")  # what it trained is kept with the run


def test_the_llama2_chat_config_uses_the_chat_template():
    config = load_run_config(R4.parent / "llama2-7b-chat-openorca.yaml")
    assert config.data.template == "chat" and config.data.system_field == "system_prompt"
