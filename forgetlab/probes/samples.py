"""Generation samples: what the base and the fine-tuned model say to the same few prompts.

Logged once, at the end of a run, as `probes/samples.json` (machine-readable) and
`probes/samples.md` (side by side, for a person reading the run in the MLflow UI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import torch

from forgetlab.probes.generation import generate_greedy


def _markdown(records: list[dict], step: int) -> str:
    lines = [f"# Generation samples at step {step}", "", "| prompt | base | fine-tuned |", "|---|---|---|"]
    for record in records:
        cells = [record[key].replace("|", "\\|").replace("\n", "<br>") for key in ("prompt", "base_answer", "tuned_answer")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class SamplesProbe:
    texts: list[str]
    prompts: list[list[int]]
    prompt_format: str
    tokenizer: object
    max_new_tokens: int
    max_length: Optional[int]

    name = "samples"

    def run(self, model, device: torch.device, autocast_factory, step: int) -> tuple[dict[str, float], dict[str, str]]:
        batch = len(self.prompts)
        base = generate_greedy(model, self.prompts, self.tokenizer, self.max_new_tokens, batch, device, self.max_length, autocast_factory, base=True)
        tuned = generate_greedy(model, self.prompts, self.tokenizer, self.max_new_tokens, batch, device, self.max_length, autocast_factory)
        records = [{"prompt": p, "base_answer": b, "tuned_answer": t} for p, b, t in zip(self.texts, base, tuned)]
        document = {"step": step, "prompt_format": self.prompt_format, "max_new_tokens": self.max_new_tokens, "items": records}
        return {}, {
            "probes/samples.json": json.dumps(document, indent=1, ensure_ascii=False),
            "probes/samples.md": _markdown(records, step),
        }
