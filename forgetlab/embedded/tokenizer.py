"""The embedded base's tokenizer: a byte-level BPE trained on the pretraining docstrings only.

Byte-level, so any text (code, numbers, other languages) encodes without unknown tokens. Trained
on the pretraining split alone, so the held-out forgetting text is as unseen by the vocabulary as
by the weights. No special token is added automatically on encode: the data pipeline decides
where EOS goes (pretraining ends every document with EOS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
# Fixed order gives fixed ids (0, 1, 2) the model config can rely on.
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)


def train_tokenizer(documents: Sequence[str], vocab_size: int, model_max_length: int) -> "PreTrainedTokenizerFast":
    """Train the BPE on `documents` and wrap it for transformers (save_pretrained / AutoTokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols, seen or not, so no input can fall outside the vocabulary.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(documents, trainer=trainer, length=len(documents))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def encode_documents(tokenizer: "PreTrainedTokenizerFast", documents: Sequence[str]) -> list[int]:
    """One token stream: each document's tokens followed by EOS, as pretraining and evaluation see it."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    # The backend directly: the wrapper warns about every document longer than one context.
    for encoding in tokenizer.backend_tokenizer.encode_batch(list(documents), add_special_tokens=False):
        stream.extend(encoding.ids)
        stream.append(eos)
    return stream
