"""The run's callbacks run in one order, written in forgetlab/finetune/callbacks.py; these fail if it changes.

Throughput must stop its clock before any evaluation of the step, the probes follow the curve, and
the checkpoint comes after every evaluation of its step (the module says why for each).
"""

from __future__ import annotations

from tiny import R4, TINY_BASE


def test_in_call_order_puts_throughput_first_and_the_checkpoint_last():
    from forgetlab.finetune.callbacks import in_call_order

    throughput, curve, probes, first_extra, second_extra, progress, checkpoint = (object() for _ in range(7))
    ordered = in_call_order(throughput=throughput, curve=curve, probes=probes, extras=[first_extra, second_extra],
                            progress=progress, checkpoint=checkpoint)  # fmt: skip
    assert ordered == [throughput, curve, probes, first_extra, second_extra, progress, checkpoint]


def test_in_call_order_leaves_out_what_a_run_does_not_have():
    from forgetlab.finetune.callbacks import in_call_order

    throughput, curve = object(), object()
    assert in_call_order(throughput=throughput, curve=curve) == [throughput, curve]


def test_the_recipes_trainer_calls_its_callbacks_in_that_order(workdir):
    """A real set-up with every optional callback: the trainer holds them in the documented order."""
    import lightning as L

    from forgetlab.config import load_run_config
    from forgetlab.finetune.checkpoints import EvaluationCheckpoint
    from forgetlab.finetune.curves import ForgettingCurveCallback
    from forgetlab.finetune.progress import StepProgress
    from forgetlab.finetune.recipe import FineTuningRecipe
    from forgetlab.finetune.throughput import ThroughputCallback
    from forgetlab.probes.callback import ProbeCallback

    class Extra(L.Callback):
        pass

    overrides = [*TINY_BASE, "train.steps=4", "train.eval_every=2", "train.checkpoint_every=1",
                 "probes.samples={prompts: ['Return the'], max_new_tokens: 2}"]  # fmt: skip
    recipe = FineTuningRecipe(load_run_config(R4, overrides), progress=True, extra_callbacks=[Extra()])
    recipe.setup()
    try:
        ours = (ThroughputCallback, ForgettingCurveCallback, ProbeCallback, Extra, StepProgress, EvaluationCheckpoint)
        in_trainer = [type(callback) for callback in recipe.trainer.callbacks if isinstance(callback, ours)]
        assert in_trainer == list(ours)
    finally:
        recipe.tracker.finish("FINISHED")
