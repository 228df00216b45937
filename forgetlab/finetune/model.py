"""Loading the base model and tokenizer, and putting LoRA adapters on it.

The base is the embedded Llama (built and cached on first use), a local checkpoint folder, a GGUF
file (converted once into the cache, see `gguf_base.py`), or a hub name. The adapted model is a PEFT model: the base behaviour is the same network with the
adapters disabled, so forgetting needs no second copy of the weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from forgetlab.config import LoraConfig, ModelConfig
from forgetlab.errors import UserError
from forgetlab.finetune.gguf_base import ensure_gguf_checkpoint, is_gguf_file
from forgetlab.utils.paths import is_local_path

EMBEDDED_PREFIX = "embedded"


@dataclass(frozen=True)
class LoadedBase:
    """A base model ready for adapters, and what identifies it."""

    model: torch.nn.Module
    tokenizer: object
    fingerprint: str
    source: str
    forget_text_path: Optional[Path]  # the embedded base's held-out pretraining text; None for other bases
    heldout_loss: Optional[float]


def is_embedded(name: str) -> bool:
    return name == EMBEDDED_PREFIX or name.startswith(EMBEDDED_PREFIX + "-")


def resolve_dtype(requested: str, on_gpu: bool) -> torch.dtype:
    if requested == "auto":
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[requested]


def _folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a checkpoint folder: its config and the names and sizes of its weight files."""
    digest = hashlib.sha256()
    config_file = folder / "config.json"
    if config_file.exists():
        digest.update(config_file.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def load_base(config: ModelConfig, on_gpu: bool = False, progress: bool = True) -> LoadedBase:
    """Load (building first if it is the embedded base and not cached) the base model and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(config.dtype, on_gpu)
    forget_text_path: Optional[Path] = None
    heldout_loss: Optional[float] = None
    if is_embedded(config.name):
        from forgetlab.embedded.base import ensure_embedded_base

        embedded = ensure_embedded_base(config.name, progress=progress)
        location: str = str(embedded.model_dir)
        fingerprint = embedded.base_fingerprint
        forget_text_path = embedded.forget_text_path
        heldout_loss = embedded.heldout_loss
        trust_remote_code = False
    elif is_gguf_file(config.name):
        converted = ensure_gguf_checkpoint(Path(config.name), progress=progress)
        location, fingerprint, trust_remote_code = str(converted.folder), converted.fingerprint, False
    else:
        location = str(Path(config.name).expanduser()) if is_local_path(config.name) else config.name
        if is_local_path(config.name) and not Path(location).exists():
            raise UserError(
                f"model.name: checkpoint folder '{config.name}' does not exist; "
                "give an existing folder, a hub name, or 'embedded'"
            )
        is_folder = Path(location).is_dir()
        fingerprint = (
            _folder_fingerprint(Path(location)) if is_folder else f"hub:{config.name}@{config.revision or 'main'}"
        )
        trust_remote_code = config.trust_remote_code
        if not is_folder:
            from forgetlab.finetune.hub import require_hub

            require_hub("model.name", config.name, "model")  # fails at once offline, instead of a minute of retries
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            location, revision=config.revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            location, revision=config.revision, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"model.name: could not load '{config.name}' ({first_line[:200]}); give a local checkpoint folder, "
            "or a hub name with network access (HF_HUB_OFFLINE unset)"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedBase(model, tokenizer, fingerprint, location, forget_text_path, heldout_loss)


def num_decoder_layers(model: torch.nn.Module) -> Optional[int]:
    return getattr(getattr(model, "config", None), "num_hidden_layers", None)


def max_context(model: torch.nn.Module) -> Optional[int]:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def check_model_fits_config(model: torch.nn.Module, lora: LoraConfig, context_length: int) -> None:
    """Checks that need the model, done before any tracking run exists."""
    layers = num_decoder_layers(model)
    if lora.layers is not None and layers is not None:
        out_of_range = [index for index in lora.layers if index >= layers]
        if out_of_range:
            raise UserError(
                f"lora.layers: layer index {out_of_range[0]} is out of range; the model has {layers} layers "
                f"(valid 0..{layers - 1})"
            )
    limit = max_context(model)
    if limit is not None and context_length > limit:
        raise UserError(
            f"train.context_length: {context_length} is longer than the model allows ({limit}); use at most {limit}"
        )
    check_target_modules(model, lora.target_modules)


def _matches(module_name: str, target: str) -> bool:
    """PEFT's rule for a list of names: the module's full name is the target or ends with '.target'."""
    return module_name == target or module_name.endswith("." + target)


def check_target_modules(model: torch.nn.Module, target_modules) -> None:
    """Every configured name adapts at least one linear layer; 'all-linear' (PEFT's own) always does."""
    if target_modules == "all-linear":
        return
    adaptable = (torch.nn.Linear, torch.nn.Embedding)  # what PEFT LoRA wraps in these models
    linear = [name for name, module in model.named_modules() if isinstance(module, adaptable)]
    missing = [target for target in target_modules if not any(_matches(name, target) for name in linear)]
    if missing:
        available = sorted(
            {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
        )
        raise UserError(
            f"lora.target_modules: no module named '{missing[0]}' in this model; linear modules are: "
            f"{', '.join(available)} (or use all-linear)"
        )


def apply_lora(model: torch.nn.Module, lora: LoraConfig):
    """Wrap the base with PEFT LoRA adapters. Seed *before* calling: this initialises A."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.rslora,
        # 'all-linear' must reach PEFT as the string itself (PEFT's shorthand), a list as a list.
        target_modules=lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules),
        layers_to_transform=list(lora.layers) if lora.layers is not None else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def count_trainable_parameters(model: torch.nn.Module) -> int:
    """P: the exact number of fine-tuned parameters (the LoRA A and B matrices)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def adapter_state_fingerprint(model: torch.nn.Module) -> str:
    """Hash of the trainable weights; used by tests and checkpoints to check identity."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def describe_base(model: torch.nn.Module) -> dict:
    config = getattr(model, "config", None)
    return json.loads(config.to_json_string()) if config is not None else {}
