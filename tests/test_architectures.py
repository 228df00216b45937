"""Any decoder-only checkpoint PEFT supports: tiny checkpoints of five architectures, trained end to end.

Each checkpoint is random-initialised, saved by the test with its own tokenizer, and given to
`forgetlab run` as a local folder, as a researcher gives theirs.
"""

from __future__ import annotations

import math

import pytest
from tiny import R4
from tiny_checkpoints import ARCHITECTURES, save_checkpoint, tiny_tokenizer, write_text_data

from forgetlab.config import load_run_config
from forgetlab.errors import UserError
from forgetlab.finetune.recipe import execute_run

SHORT = [
    "train.context_length=32",
    "train.batch_size=4",
    "train.steps=4",
    "train.eval_every=2",
    "train.warmup_steps=1",
    "train.lr=1e-2",
    "train.ft_eval_sequences=4",
    "forget.num_sequences=4",
    "forget.batch_size=2",
]
# Phi-3 fuses q/k/v and gate/up: the Llama names do not exist there, PEFT's all-linear does.
TARGETS = {"phi3": "all-linear"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = tiny_tokenizer()
    folders = {name: save_checkpoint(root / name, name, tokenizer) for name in ARCHITECTURES}
    data, forget = write_text_data(root / "data")
    return folders, data, forget


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_local_checkpoint_of_each_architecture_runs_end_to_end(architecture, checkpoints, workdir):
    folders, data, forget = checkpoints
    target = TARGETS.get(architecture)
    overrides = [
        f"model.name={folders[architecture]}", f"data.source={data}", f"forget.source={forget}", *SHORT,
        *([f"lora.target_modules={target}"] if target else []),
    ]  # fmt: skip
    result = execute_run(load_run_config(R4, overrides), progress=False)
    assert result.status == "FINISHED" and result.steps_done == 4
    assert result.P > 0
    assert result.first["forget_kl"] == pytest.approx(0.0, abs=1e-6)
    assert result.first["forget_agree"] == 1.0
    assert result.last["forget_kl"] > 0  # the adapters moved
    assert all(math.isfinite(value) for value in result.last.values())


def test_module_names_are_checked_against_the_model(checkpoints, workdir):
    folders, data, forget = checkpoints
    overrides = [f"model.name={folders['phi3']}", f"data.source={data}", f"forget.source={forget}", *SHORT]
    with pytest.raises(UserError) as error:
        execute_run(load_run_config(R4, overrides), progress=False)  # the default Llama names
    message = str(error.value)
    assert "\n" not in message
    assert "no module named 'q_proj'" in message and "qkv_proj" in message and "gate_up_proj" in message
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # refused before any run existed


def test_all_linear_adapts_every_linear_layer_but_the_head(checkpoints):
    from transformers import AutoModelForCausalLM

    from forgetlab.config import LoraConfig
    from forgetlab.finetune.model import apply_lora

    model = apply_lora(
        AutoModelForCausalLM.from_pretrained(checkpoints[0]["qwen2"]), LoraConfig(target_modules="all-linear")
    )
    adapted = {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_a_hub_name_without_network_fails_at_once_without_retries(workdir, monkeypatch):
    """Issue 17: `model.name=gpt2` offline spent a minute in retries; now one check, one line."""
    import transformers

    from forgetlab.finetune import hub

    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens, refused at once
    hub.hub_reachable.cache_clear()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: calls.append(a))
    with pytest.raises(UserError) as error:
        execute_run(load_run_config(R4, ["model.name=gpt2"]), progress=False)
    message = str(error.value)
    assert message.startswith("model.name: 'gpt2' is a hub model and the hub (http://127.0.0.1:9) cannot be reached")
    assert "\n" not in message
    assert calls == []  # no download was attempted, so nothing was retried
    hub.hub_reachable.cache_clear()
