"""`forgetlab ARGS` as a user runs it, which sends itself a signal once its run has done STEP updates.

    python tests/signal_at_step.py KILL 15 run --config lightning_configs/r4.yaml ...
    python tests/signal_at_step.py INT 15 run ...    # Ctrl-C

The signal goes out when the update after STEP is about to start: the evaluation at STEP and its
checkpoint (an evaluation interval is a Lightning epoch) are done, as they are when a kill or a
Ctrl-C lands between two evaluations. Where it lands is set by the step, not by how fast the
machine is, so no test polls the store or waits on a clock. `signal.raise_signal` delivers it to
this thread before it returns (KILL ends the process there; INT raises KeyboardInterrupt there).

Only for tests: the run gets the callback through `forgetlab.finetune.recipe.execute_run`, which the command
calls; forgetlab itself has no hook for it.
"""

from __future__ import annotations

import signal
import sys

import lightning as L


class SignalAtStep(L.Callback):
    def __init__(self, signum: int, step: int):
        self.signum = signum
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_index: int) -> None:
        if trainer.global_step >= self.step:
            signal.raise_signal(self.signum)


def main() -> None:
    name, step, *args = sys.argv[1:]
    import forgetlab.finetune.recipe
    from forgetlab.cli import main as forgetlab_main

    execute_run = forgetlab.finetune.recipe.execute_run

    def execute_run_with_signal(*positional, **keywords):
        keywords["extra_callbacks"] = [
            *(keywords.get("extra_callbacks") or []),
            SignalAtStep(getattr(signal, f"SIG{name}"), int(step)),
        ]
        return execute_run(*positional, **keywords)

    forgetlab.finetune.recipe.execute_run = execute_run_with_signal
    sys.argv = ["forgetlab", *args]
    forgetlab_main()


if __name__ == "__main__":
    main()
