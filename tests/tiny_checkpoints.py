"""Tiny random-initialised checkpoints of several architectures, each with its own tiny tokenizer.

Built and `save_pretrained` by the tests themselves (no network): a folder a researcher would
point `model.name` at. The text they are trained and evaluated on is the standard library's own
docstrings, which exist on any machine with Python.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
SMALL = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128
)
ARCHITECTURES = {
    "llama": ("LlamaConfig", dict(num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(num_key_value_heads=2, sliding_window=None)),
    "qwen2": ("Qwen2Config", dict(num_key_value_heads=2)),
    "gemma": ("GemmaConfig", dict(num_key_value_heads=1, head_dim=8)),
    "phi3": ("Phi3Config", dict(num_key_value_heads=4, pad_token_id=3)),
}


def stdlib_paragraphs(limit: int = 400) -> list[str]:
    """Docstring paragraphs of a few standard-library modules: English prose present on every machine."""
    import collections
    import json as json_module
    import pathlib
    import re
    import textwrap

    paragraphs: list[str] = []
    for module in (textwrap, re, json_module, collections, pathlib, inspect):
        for _, member in inspect.getmembers(module):
            doc = inspect.getdoc(member) or ""
            paragraphs += [p.strip() for p in doc.split("\n\n") if len(p.strip()) > 40]
    return paragraphs[:limit]


def tiny_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A 400-token byte-level BPE trained on stdlib docstrings, with EOS/pad and (optionally) a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(stdlib_paragraphs(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def save_checkpoint(folder: Path, architecture: str, tokenizer=None) -> Path:
    """A random-initialised model of `architecture` and its tokenizer, saved as a checkpoint folder."""
    import torch
    import transformers

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    config_class, extra = ARCHITECTURES[architecture]
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **{**SMALL, **extra},
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_text_data(folder: Path) -> tuple[Path, Path]:
    """Fine-tuning rows (jsonl, instruction format) and forgetting text (txt) from stdlib docstrings."""
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = stdlib_paragraphs()
    rows = [{"prompt": f"Explain: {p.split('.')[0][:60]}", "response": p} for p in paragraphs[::2]]
    fine_tuning = folder / "instructions.jsonl"
    fine_tuning.write_text("".join(json.dumps(row) + "\n" for row in rows))
    forget = folder / "forget.txt"
    forget.write_text("\n\n".join(paragraphs[1::2]))
    return fine_tuning, forget
