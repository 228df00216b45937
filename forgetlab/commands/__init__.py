"""Command modules of the CLI; each exposes `register(app: typer.Typer)`.

Keep imports at the top of these modules light: heavy libraries are imported inside commands.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMAND_MODULES = ["run", "base", "ui", "warehouse", "laws", "sweep", "probes", "configs", "plot"]


def load_command_modules() -> list[ModuleType]:
    """Every command module, in the order their commands are listed; one that cannot be imported is an error.

    A command module missing from an installation (a packaging slip) must not take its commands
    away without a word.
    """
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(f"forgetlab.commands.{name}"))
        except ImportError as error:
            raise ImportError(
                f"forgetlab's command module forgetlab.commands.{name} cannot be imported ({error}); "
                "the installation is incomplete: reinstall forgetlab"
            ) from error
    return modules


REGISTERED_MODULES = load_command_modules()
