"""Generation samples: what the base and the fine-tuned model say to the same few prompts.

Logged once, at the end of a run, as the MLflow table `probes/samples.json` (one row per prompt:
step, prompt, completion, base_completion, prompt_format, max_new_tokens). `mlflow.load_table`
reads it back across runs, and the UI's artifact view compares the `completion` column of
several runs side by side, joined on `prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from forgetlab.probes.generation import generate_greedy
from forgetlab.tracking.names import SAMPLES_TABLE


@dataclass
class SamplesProbe:
    texts: list[str]
    prompts: list[list[int]]
    prompt_format: str
    tokenizer: object
    max_new_tokens: int
    max_length: Optional[int]

    name = "samples"

    def run(self, model, device: torch.device, autocast_factory, step: int) -> tuple[dict[str, float], dict[str, dict]]:
        """No metrics; one table, {column: values}, which the probe callback logs with `log_table`."""
        batch = len(self.prompts)
        base = generate_greedy(
            model,
            self.prompts,
            self.tokenizer,
            self.max_new_tokens,
            batch,
            device,
            self.max_length,
            autocast_factory,
            base=True,
        )
        tuned = generate_greedy(
            model, self.prompts, self.tokenizer, self.max_new_tokens, batch, device, self.max_length, autocast_factory
        )
        rows = len(self.texts)
        table = {
            "step": [step] * rows,
            "prompt": list(self.texts),
            "completion": list(tuned),
            "base_completion": list(base),
            "prompt_format": [self.prompt_format] * rows,
            "max_new_tokens": [self.max_new_tokens] * rows,
        }
        return {}, {SAMPLES_TABLE: table}
