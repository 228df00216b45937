"""One fine-tuning run from a validated config: the entry point the CLI, the sweep and the tests call.

The run itself is `forgetlab.recipe.FineTuningRecipe` (setup, then train).
"""

from __future__ import annotations

from typing import Optional

from forgetlab.config import RunConfig
from forgetlab.recipe import FineTuningRecipe, RunResult

__all__ = ["RunResult", "execute_run"]


def execute_run(
    config: RunConfig,
    resume_run_id: Optional[str] = None,
    extra_tags: Optional[dict[str, str]] = None,
    progress: bool = True,
    extra_callbacks: Optional[list] = None,
) -> RunResult:
    """Run one fine-tuning from `config`; returns what was logged. Raises UserError on bad input."""
    recipe = FineTuningRecipe(config, resume_run_id, extra_tags, progress, extra_callbacks)
    recipe.setup()
    return recipe.train()
