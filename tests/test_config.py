"""Config validation: every mistake is one line naming the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetlab.config import load_run_config
from forgetlab.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("lora:\n  rnak: 4\n", "unknown key 'lora.rnak'"),
        ("lora:\n  rank: -1\n", "lora.rank: Input should be greater than 0"),
        ("lora:\n  rank: 0\n", "lora.rank: Input should be greater than 0"),
        ("lora:\n  rank: four\n", "lora.rank: Input should be a valid integer"),
        ("train:\n  steps: 0\n", "train.steps: Input should be greater than 0"),
        (
            "train:\n  steps: 10\n  warmup_steps: 11\n",
            "train.warmup_steps: exceeds train.steps = 10, so the peak lr is never reached",
        ),
        ("train:\n  optimizer: sgd\n", "train.optimizer: Input should be 'adamw' or 'adafactor'"),
        ("lora:\n  layers: [-1]\n", "lora.layers: layer indices must be >= 0"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("data:\n  template: 'no placeholder'\n", "data.template: must contain '{prompt}'"),
        ("- just\n- a list\n", "expected a mapping"),
        ("lora: [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, yaml_text, expected):
    path = write(tmp_path, yaml_text)
    with pytest.raises(UserError) as error:
        load_run_config(path)
    message = error.value.message
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_unknown_key_lists_known_keys(tmp_path):
    with pytest.raises(UserError) as error:
        load_run_config(write(tmp_path, "lora:\n  rnak: 4\n"))
    assert "rank" in error.value.message and "alpha" in error.value.message


def test_missing_file_names_it():
    with pytest.raises(UserError, match="config file not found"):
        load_run_config(Path("no/such/config.yaml"))


def test_overrides_apply_with_types(tmp_path):
    config = load_run_config(
        write(tmp_path, "lora:\n  rank: 4\n"), ["lora.rank=16", "train.lr=1e-3", "lora.layers=[0,1]"]
    )
    assert config.lora.rank == 16
    assert config.train.lr == pytest.approx(1e-3)
    assert config.lora.layers == [0, 1]


def test_bad_override_key_is_rejected(tmp_path):
    with pytest.raises(UserError, match="unknown key 'lora.rnak'"):
        load_run_config(write(tmp_path, ""), ["lora.rnak=3"])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load_run_config(write(tmp_path, ""), ["lora.rank"])


@pytest.mark.parametrize("path", sorted((REPO / "lightning_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    if path.name.startswith("sweep"):  # a sweep file: every point's run config validates, names are distinct
        from forgetlab.sweeps import load_sweep

        _, points = load_sweep(path)
        assert points and len({point.run_name for point in points}) == len(points)
        return
    config = load_run_config(path)
    assert config.run_name()


def test_run_name_is_derived_from_config(tmp_path):
    config = load_run_config(write(tmp_path, "seed: 3\nlora:\n  rank: 8\ndata:\n  source: embedded:instruct\n"))
    assert config.run_name() == "embedded-r8-instruct-s3"
    mitigated = load_run_config(None, ["mitigation.replay=0.05", "mitigation.kl_to_base=0.1"])
    assert mitigated.run_name() == "embedded-r4-code-s0-replay0.05-kl0.1"


@pytest.mark.parametrize(
    "model, expected",
    [
        ("embedded-tiny", "embedded-tiny-r4-code-s0"),
        ("meta-llama/Llama-2-7b-chat-hf", "Llama-2-7b-chat-hf-r4-code-s0"),
        ("/models/llama-2-7b-chat-hf/", "llama-2-7b-chat-hf-r4-code-s0"),
        ("/models/SmolLM2-135M.Q8_0.gguf", "SmolLM2-135M.Q8_0-r4-code-s0"),
    ],
)
def test_default_run_names_tell_base_models_apart(model, expected):
    # Two runs that differ only in their base model were both r4-code-s0.
    assert load_run_config(None, [f"model.name={model}"]).run_name() == expected


def test_a_warm_up_longer_than_the_run_is_blamed_on_its_override():
    with pytest.raises(
        UserError,
        match=r"^override 'train.warmup_steps=50': train.warmup_steps: exceeds train.steps = 30.*at most 30 \(got 50\)$",
    ):
        load_run_config(REPO / "lightning_configs" / "r4.yaml", ["train.steps=30", "train.warmup_steps=50"])
    assert (
        load_run_config(REPO / "lightning_configs" / "r4.yaml", ["train.steps=20"]).train.warmup_steps == 20
    )  # equal is fine


def test_override_error_is_blamed_on_the_override_not_the_file(capsys, monkeypatch):
    from cli_helpers import invoke

    code, out, err = invoke(["run", "--config", "lightning_configs/r4.yaml", "lora.rnak=4"], capsys, monkeypatch)
    assert code == 2
    line = " ".join(err.split())
    assert "override 'lora.rnak=4': unknown key 'lora.rnak'" in line
    assert "r4.yaml" not in line
    with pytest.raises(UserError, match=r"^override 'train.steps=0': train.steps: Input should be greater than 0"):
        load_run_config(REPO / "lightning_configs" / "r4.yaml", ["train.steps=0"])


def test_a_mistake_in_the_file_still_names_the_file(tmp_path):
    with pytest.raises(UserError, match=r"bad.yaml: unknown key 'lora.rnak'"):
        load_run_config(write(tmp_path, "lora:\n  rnak: 4\n"), ["lora.rank=8"])


def test_a_sweep_file_given_to_run_says_to_use_sweep(capsys, monkeypatch):
    from cli_helpers import invoke

    code, out, err = invoke(["run", "--config", "lightning_configs/sweep-smoke.yaml"], capsys, monkeypatch)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "this is a sweep file; use `forgetlab sweep --config lightning_configs/sweep-smoke.yaml`" in lines[0]


def test_help_shows_flags_without_a_value(capsys, monkeypatch):
    from cli_helpers import invoke

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = invoke(["sweep", "--help"], capsys, monkeypatch)
    assert code == 0
    dry_run = next(line for line in out.splitlines() if "--dry-run" in line)
    assert "<bool>" not in dry_run and "List the points" in dry_run
    assert "<float>" in next(
        line for line in out.splitlines() if "--stale-minutes" in line
    )  # options with a value keep theirs
    code, out, _ = invoke(["run", "--help"], capsys, monkeypatch)
    assert "<bool>" not in out
