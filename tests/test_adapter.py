"""The trained adapter is an MLflow artifact of its run: loaded onto the base with PEFT it gives the run's last ft_loss."""

from __future__ import annotations

import pytest
import torch
from tiny import R4, TINY_BASE

from forgetlab.config import load_run_config
from forgetlab.finetune.recipe import execute_run


def test_logged_adapter_reloads_onto_the_base_and_reproduces_the_last_ft_loss(workdir):
    import mlflow
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetlab.embedded.base import ensure_embedded_base
    from forgetlab.finetune.data import load_fine_tuning_data
    from forgetlab.finetune.forgetting import held_out_loss
    from forgetlab.locations import checkpoint_root

    config = load_run_config(
        R4, [*TINY_BASE, "train.lr=1e-2", "train.steps=10", "train.eval_every=5", "tracking.log_merged_model=true"]
    )
    result = execute_run(config, progress=False)
    assert result.status == "FINISHED"
    assert result.adapter_uri.endswith("/adapter")
    assert not (checkpoint_root() / result.run_id).exists()  # a finished run's resume checkpoints are pruned

    # tracking_uri passed, not set: mlflow.set_tracking_uri would send every later test's runs there.
    folder = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/adapter", dst_path=str(workdir / "download"), tracking_uri=result.tracking_uri
    )
    names = {path.name for path in (workdir / "download" / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names

    model_dir = ensure_embedded_base("embedded-tiny", progress=False).model_dir
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens_needed = config.train.steps * config.train.batch_size * config.train.context_length
    data = load_fine_tuning_data(config.data, tokenizer, config.train.context_length, tokens_needed)
    validation = type(data.validation)(
        data.validation.input_ids[: config.train.ft_eval_sequences],
        data.validation.labels[: config.train.ft_eval_sequences],
    )
    loss = held_out_loss(tuned, validation, config.forget.batch_size, torch.device("cpu"))
    assert loss == pytest.approx(result.last["ft_loss"], rel=1e-5)
    assert loss < result.first["ft_loss"]  # it is the trained adapter, not the initial one

    # The merged model: a plain checkpoint with its tokenizer, no PEFT needed, the same loss.
    assert result.merged_uri.endswith("/merged")
    merged_folder = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/merged", dst_path=str(workdir / "download"), tracking_uri=result.tracking_uri
    )
    merged = AutoModelForCausalLM.from_pretrained(merged_folder).eval()
    assert AutoTokenizer.from_pretrained(merged_folder).get_vocab() == tokenizer.get_vocab()
    merged_loss = held_out_loss(merged, validation, config.forget.batch_size, torch.device("cpu"))
    assert merged_loss == pytest.approx(result.last["ft_loss"], rel=1e-4)
