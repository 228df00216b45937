"""Reduced precision end to end on the CPU: bf16-mixed and bf16-true runs of r4 on the tiny base.

Every evaluation has several batches (L_ft, forgetting, the multiple-choice and refusal probes),
so a precision context entered once per evaluation instead of once per forward pass would fail
here. Base and fine-tuned passes share the precision context: at step 0 KL is 0 and agreement 1.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
from tiny import R4, TINY_BASE

from forgetlab.config import load_run_config
from forgetlab.finetune.recipe import execute_run

SEVERAL_BATCHES = [
    *TINY_BASE,
    "train.lr=1e-2",
    "train.steps=10",
    "train.eval_every=5",
    "train.ft_eval_sequences=8",
    "forget.num_sequences=8",
    "forget.batch_size=2",  # 4 forgetting batches, 4 L_ft batches per evaluation
    "probes.multiple_choice.max_items=8",
    "probes.multiple_choice.batch_size=4",
    "probes.multiple_choice.every=5",
    "probes.refusal.max_items=2",
    "probes.refusal.batch_size=1",
    "probes.refusal.max_new_tokens=3",
]


class StopAfter(L.Callback):
    """Stands for a crash mid-run: raises once the trainer has done `step` updates."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index):
        if trainer.global_step >= self.step:
            raise RuntimeError("stopped by the test")


def _history(result, key: str) -> dict[int, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)
    return {point.step: point.value for point in client.get_metric_history(result.run_id, key)}


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_reduced_precision_run_starts_at_zero_forgetting_and_resumes(precision, workdir):
    config = load_run_config(R4, [*SEVERAL_BATCHES, f"train.precision={precision}"])
    result = execute_run(config, progress=False)
    assert result.status == "FINISHED" and result.steps_done == 10

    assert result.first["forget_kl"] == pytest.approx(0.0, abs=1e-6)
    assert result.first["forget_agree"] == 1.0
    assert result.first["probe_mc_agree"] == 1.0
    assert "probe_refusal_rate" in result.first  # generation ran under the precision context too
    assert all(math.isfinite(value) for value in result.last.values())
    assert result.last["forget_kl"] > 1e-4  # lr 1e-2 moved the adapters: the curve is not flat
    assert result.last["ft_loss"] < result.first["ft_loss"]

    interrupted_config = config.model_copy(
        update={"tracking": config.tracking.model_copy(update={"run_name": f"interrupted-{precision}"})}
    )
    with pytest.raises(RuntimeError, match="stopped by the test"):
        execute_run(interrupted_config, progress=False, extra_callbacks=[StopAfter(7)])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)
    [interrupted] = client.search_runs(
        [client.get_experiment_by_name("forgetlab").experiment_id], f"attributes.run_name = 'interrupted-{precision}'"
    )
    resumed = execute_run(interrupted_config, resume_run_id=interrupted.info.run_id, progress=False)
    assert resumed.status == "FINISHED" and resumed.steps_done == 10
    for key in ("ft_loss", "forget_kl", "forget_soft", "forget_agree"):
        expected, got = _history(result, key), _history(resumed, key)
        assert sorted(got) == sorted(expected) == [0, 5, 10], key
        for step in (5, 10):
            assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), (key, step)
