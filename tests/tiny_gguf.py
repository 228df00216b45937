"""A tiny Llama written as a GGUF file by the tests themselves, as llama.cpp's converter lays it out.

`write_tiny_gguf` takes a checkpoint folder (tests/tiny_checkpoints.py) and writes its weights
(float32, or quantized to Q8_0) and its byte-level BPE tokenizer (vocabulary, merges, special tokens,
chat template) with the `gguf` package's writer, under llama.cpp's tensor and key names. q and k
are permuted the way llama.cpp stores them (transformers permutes them back on reading), so a
correct reader gets the folder's model back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# transformers' GGUF reader maps these llama.cpp names back to a Llama's modules.
LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
CONTROL, NORMAL = 3, 1  # llama.cpp's token types


def _llama_cpp_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's order of q/k rows (rotary halves interleaved per head)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tokenizer_metadata(folder: Path) -> tuple[list[str], list[int], list[str]]:
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = dict(spec["model"]["vocab"])
    for added in spec.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {added["content"] for added in spec.get("added_tokens", []) if added.get("special")}
    types = [CONTROL if token in special else NORMAL for token in tokens]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in spec["model"]["merges"]]
    return tokens, types, merges


def write_tiny_gguf(folder: Path, path: Path, quantize: bool = False) -> Path:
    """The Llama checkpoint in `folder` written as the GGUF file `path` (Q8_0 weights when `quantize`)."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    tokens, types, merges = _tokenizer_metadata(folder)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    state = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
    quantization = gguf.GGMLQuantizationType.Q8_0

    def add(name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=np.float32)
        if quantize and array.ndim == 2 and array.shape[-1] % 32 == 0:
            writer.add_tensor(name, gguf.quantize(array, quantization), raw_dtype=quantization)
        else:
            writer.add_tensor(name, array)

    add("token_embd.weight", state["model.embed_tokens.weight"])
    add("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:
        add("output.weight", state["lm_head.weight"])
    for layer in range(config.num_hidden_layers):
        for short, module in LAYER_TENSORS.items():
            weights = state[f"model.layers.{layer}.{module}.weight"]
            if short == "attn_q":
                weights = _llama_cpp_permute(weights, config.num_attention_heads)
            elif short == "attn_k":
                weights = _llama_cpp_permute(weights, config.num_key_value_heads)
            add(f"blk.{layer}.{short}.weight", weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
