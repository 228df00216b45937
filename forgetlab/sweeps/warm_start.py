"""Starting a sweep's points from a warm process: the training libraries imported once, each point forked.

A fresh `python -m forgetlab.sweeps.worker` spends 12-15 s of a 2-core machine importing torch,
Lightning, transformers, PEFT, MLflow and datasets before its first step; at the embedded default
a 300-update run takes about 80 s, so a CPU sweep spent a sixth of its time importing.
multiprocessing's forkserver imports them once (`set_forkserver_preload`) and forks each point
from that process: every point is still its own process (a crash, a kill or a memory spike takes
one point down, its output goes to its own log), and it starts with the imports already done.

Used on CPU-only machines for single-device points. Where a GPU is visible, points start as fresh
processes: a process forked after CUDA was touched cannot use CUDA, and next to a GPU run of a real
model the imports are small. Multi-device points start fresh too: Lightning's DDP launcher re-runs
the process's command line for its other ranks. `FORGETLAB_WARM_START=0` turns it off.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Optional

# Imported in the fork server (module names only, no work done): what a run imports lazily.
PRELOAD = (
    "torch",
    "lightning.pytorch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "peft",
    "mlflow",
    "datasets",
    "forgetlab.finetune.recipe",
)

_context: Optional[multiprocessing.context.BaseContext] = None


def warm_start_enabled() -> bool:
    """`FORGETLAB_WARM_START=0` starts every point as a fresh process (to rule the fork out, or to compare)."""
    return os.environ.get("FORGETLAB_WARM_START", "1") != "0"


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(list(PRELOAD))
    return _context


def _run_point(spec_file: str, log: str, environment: dict[str, str]) -> None:
    """The forked child: the point's environment, its log as stdout and stderr, then the worker."""
    os.environ.update(environment)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    from forgetlab.sweeps.worker import main

    sys.exit(main(spec_file))


class WarmPoint:
    """A point forked from the warm process, with the part of `subprocess.Popen` the launcher uses."""

    def __init__(self, spec_file: Path, log: Path, environment: dict[str, str]):
        self._process = _forkserver().Process(target=_run_point, args=(str(spec_file), str(log), environment))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> Optional[int]:
        # Like Popen: the exit status, or minus the signal that killed it.
        return self._process.exitcode

    def poll(self) -> Optional[int]:
        return self.returncode

    def terminate(self) -> None:
        self._process.terminate()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        self._process.join(timeout)
        return self.returncode
