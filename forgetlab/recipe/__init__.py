"""The fine-tuning run as a recipe (torchtune's shape): `FineTuningRecipe(config).setup()`, then `.train()`."""

from forgetlab.recipe.finetune import FineTuningRecipe
from forgetlab.recipe.result import RunResult

__all__ = ["FineTuningRecipe", "RunResult"]
