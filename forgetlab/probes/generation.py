"""Prompts in, greedy answers out: shared by the refusal probe and the generation samples.

Prompts are shown the way the model was tuned to read them (`prompt_format`): the tokenizer's
chat template, the fine-tuning data's template, or the text as is. Generation is greedy with a
bounded number of new tokens, batched with left padding; the base answers come from the same
network with the LoRA adapters disabled.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager, Optional, Sequence

import torch

from forgetlab.errors import UserError


def resolve_prompt_format(requested: str, tokenizer, data_kind: str) -> str:
    """auto -> chat (the tokenizer has a chat template), template (instruction data) or plain."""
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if requested == "auto":
        return "chat" if has_chat else ("template" if data_kind == "instruction" else "plain")
    if requested == "chat" and not has_chat:
        raise UserError("prompt_format: 'chat' needs a tokenizer with a chat template; this one has none (use auto)")
    return requested


def encode_prompt(text: str, tokenizer, prompt_format: str, data_template: str) -> list[int]:
    """Token ids of one prompt shown in `prompt_format` (already resolved, not 'auto')."""
    if prompt_format == "chat" or (prompt_format == "template" and data_template == "chat"):  # data.template: chat
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])  # the template has its own BOS
    shown = data_template.format(prompt=text) if prompt_format == "template" else text
    return list(tokenizer(shown)["input_ids"])


def check_room(max_new_tokens: int, max_length: Optional[int], key: str) -> None:
    if max_length is not None and max_new_tokens >= max_length:
        raise UserError(f"{key}: {max_new_tokens} new tokens do not fit the model's context of {max_length}; use fewer")


@torch.no_grad()
def generate_greedy(
    model,
    prompts: Sequence[list[int]],
    tokenizer,
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
    max_length: Optional[int] = None,
    forward_context: Callable[[], ContextManager] = nullcontext,
    base: bool = False,
) -> list[str]:
    """Greedy answers (decoded new tokens, up to EOS) of the fine-tuned model, or of its base if `base`."""
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # An explicit config: a hub model's own generation_config may ask for sampling.
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )
    keep = None if max_length is None else max_length - max_new_tokens  # prompts longer than this lose their start
    was_training = model.training
    model.eval()
    answers: list[str] = []
    adapters = model.disable_adapter() if base else nullcontext()
    with adapters:
        for start in range(0, len(prompts), batch_size):
            batch = [list(ids[-keep:]) if keep else list(ids) for ids in prompts[start : start + batch_size]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
            attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
            with forward_context():  # a fresh context per pass: Lightning's can be entered once only
                output = model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
            for row in output[:, width:].tolist():
                if tokenizer.eos_token_id in row:
                    row = row[: row.index(tokenizer.eos_token_id)]
                answers.append(tokenizer.decode(row, skip_special_tokens=True))
    model.train(was_training)
    return answers
