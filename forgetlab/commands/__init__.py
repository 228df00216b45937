"""Command modules of the CLI; each exposes `register(app: typer.Typer)`.

Keep imports at the top of these modules light: heavy libraries are imported inside commands.
"""

from __future__ import annotations

import importlib

_MODULE_NAMES = ["run", "base", "ui", "warehouse", "laws", "sweep", "probes", "configs", "plot"]


def _load():
    modules = []
    for name in _MODULE_NAMES:
        try:
            modules.append(importlib.import_module(f"forgetlab.commands.{name}"))
        except ModuleNotFoundError as missing:
            # A command group that is not written yet simply does not appear.
            if missing.name != f"forgetlab.commands.{name}":
                raise
    return modules


REGISTERED_MODULES = _load()
