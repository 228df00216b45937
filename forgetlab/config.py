"""The run configuration: every field typed and documented once, validated before any work.

A config is a YAML file (see `lightning_configs/`) whose sections mirror the classes below.
`load_run_config` reads it, applies command-line overrides (`lora.rank=8`) and validates it with
pydantic, so an unknown key, a wrong type or an out-of-range value is rejected with one line
naming the file, the key and what was expected, before a model is loaded or a run is created.
Checks that need the model (layer indices, context length) happen in `forgetlab.finetune.model`, still
before the tracking run is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from forgetlab.errors import UserError

LLAMA_LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True)


class ModelConfig(Section):
    name: str = Field(
        "embedded",
        description="Base model: 'embedded' (forgetlab's own small Llama, built and cached on first use), "
        "'embedded-tiny' (for tests), a local checkpoint folder, a GGUF file (llama.cpp/Ollama; converted once "
        "into the cache, needs forgetlab[gguf]), or a hub name (e.g. meta-llama/Llama-2-7b-chat-hf).",
    )
    revision: Optional[str] = Field(None, description="Hub revision (branch, tag or commit) for a hub model.")
    trust_remote_code: bool = Field(
        False, description="Allow a hub/local model to run its own Python code. Off unless you trust the source."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype: auto = bfloat16 on a GPU that supports it, float32 on CPU."
    )

    def label(self) -> str:
        """The base model's short name, as run names show it: the last part of a path or hub name, without a
        file suffix ('meta-llama/Llama-2-7b-chat-hf' -> 'Llama-2-7b-chat-hf', '/m/tiny.Q8_0.gguf' -> 'tiny.Q8_0')."""
        last = Path(self.name.rstrip("/")).name
        return (last.removesuffix(".gguf") if last.endswith(".gguf") else last) or "model"


class LoraConfig(Section):
    rank: int = Field(4, gt=0, description="LoRA rank r.")
    alpha: float = Field(8.0, gt=0, description="LoRA alpha; scaling is alpha/sqrt(r) with rslora, alpha/r without.")
    rslora: bool = Field(True, description="Rank-stabilised scaling (gamma = 1/sqrt(r)), as in the paper.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        default_factory=lambda: list(LLAMA_LINEAR_MODULES),
        min_length=1,
        description="Module names to adapt (checked against the model); default all linear modules of a Llama "
        "block (q,k,v,o,gate,up,down); 'all-linear' = every linear layer but the output head (PEFT's own, any architecture).",
    )
    layers: Optional[list[int]] = Field(
        None, description="Indices of the decoder layers to adapt (0-based); null = all layers."
    )

    @field_validator("layers")
    @classmethod
    def _layers_non_negative(cls, layers: Optional[list[int]]) -> Optional[list[int]]:
        if layers is not None:
            if not layers:
                raise ValueError("an empty list adapts nothing; use null for all layers")
            if any(index < 0 for index in layers):
                raise ValueError("layer indices must be >= 0")
        return layers


class DataConfig(Section):
    source: str = Field(
        "embedded:code",
        description="Fine-tuning data: 'embedded:code' or 'embedded:instruct', a local file or folder "
        "(jsonl/json/parquet/csv/txt), or a hub data set name.",
    )
    name: Optional[str] = Field(
        None, description="Short label of the data set used in run names and queries; default derived from source."
    )
    hub_config: Optional[str] = Field(None, description="Hub data set configuration name, if it has several.")
    format: Literal["auto", "text", "instruction"] = Field(
        "auto", description="text: train on every token; instruction: prompt+response, loss on the response only."
    )
    text_field: str = Field("text", description="Column holding the text (format text).")
    prompt_field: str = Field("prompt", description="Column holding the instruction (format instruction).")
    response_field: str = Field("response", description="Column holding the answer (format instruction).")
    template: str = Field(
        "### Instruction:\n{prompt}\n\n### Response:\n",
        description="How an instruction is shown to the model; must contain {prompt}, and the response follows it. "
        "'chat' = the tokenizer's own chat template (user turn, then the assistant turn; for chat models).",
    )
    system_prompt: Optional[str] = Field(
        None, description="With template 'chat': a system message put before every instruction; null = none."
    )
    system_field: Optional[str] = Field(
        None,
        description="With template 'chat': column holding each row's own system message (e.g. OpenOrca's "
        "system_prompt); an empty value falls back to system_prompt.",
    )
    max_examples: Union[Literal["auto"], int, None] = Field(
        "auto",
        description="Tokenize only a seeded subset of this many training examples. auto = sized to what the run "
        "uses (steps x batch x grad_accum x devices x context tokens, 2x margin, rounded up to a power of two), "
        "applied to splits of more than 100,000 examples; null = every example.",
    )
    streaming: bool = Field(
        False,
        description="Read the source as a stream and keep only the examples used (max_examples): for hub-sized "
        "data sets, nothing else is downloaded or converted.",
    )
    num_proc: Optional[int] = Field(
        None, gt=0, description="Processes tokenizing in parallel (datasets map); null = 1."
    )
    train_split: str = Field("train", description="Split (or file) to fine-tune on.")
    validation_split: Optional[str] = Field(
        "validation", description="Held-out split for L_ft; if the source has none, validation_fraction is held out."
    )
    validation_fraction: float = Field(
        0.05, gt=0, lt=1, description="Share held out when there is no validation split."
    )

    @field_validator("template")
    @classmethod
    def _template_has_prompt(cls, template: str) -> str:
        if template != "chat" and "{prompt}" not in template:
            raise ValueError(
                "must contain '{prompt}', where the instruction goes, or be 'chat' (the tokenizer's chat template)"
            )
        return template

    @field_validator("max_examples")
    @classmethod
    def _max_examples_positive(cls, value):
        if isinstance(value, int) and value <= 0:
            raise ValueError("must be a positive number of examples, 'auto' or null")
        return value

    def label(self) -> str:
        """The data set's short name: explicit `name`, else the last part of the source."""
        if self.name:
            return self.name
        source = self.source.split(":", 1)[1] if self.source.startswith("embedded:") else self.source
        return Path(source.rstrip("/")).stem.split("/")[-1] or "data"


@dataclass(frozen=True)
class TextSource:
    """Where a text is read from: one shape for the forgetting text, the replay text and the probe files.

    The YAML keys stay those each section documents (`forget.split`, `mitigation.replay_split`,
    `probes.refusal.split`, ...); `prefix` rebuilds them for messages: `key("split")`.
    """

    source: str  # 'embedded:NAME', a local file or folder, or a hub data set id
    hub_config: Optional[str]
    split: str
    text_field: Optional[str]  # the column holding the text; None where the reader picks its columns (probes)
    prefix: str  # 'forget.', 'mitigation.replay_', 'probes.refusal.'

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


class ForgetConfig(Section):
    source: str = Field(
        "embedded:forget",
        description="Pretraining-like text on which forgetting is measured: 'embedded:forget' (the embedded base's "
        "held-out docstrings), a local text/jsonl file, or a hub data set (e.g. wikitext with hub_config).",
    )
    hub_config: Optional[str] = Field(None, description="Hub configuration, e.g. wikitext-103-raw-v1.")
    split: str = Field("test", description="Split of a hub/local data set to read (the paper: WikiText-103 test).")
    text_field: str = Field("text", description="Column holding the text.")
    num_sequences: int = Field(32, gt=0, description="Number of packed sequences the forgetting metrics average over.")
    batch_size: int = Field(16, gt=0, description="Sequences per forward pass during forgetting evaluation.")
    base_cache_mb: int = Field(
        1024,
        ge=0,
        description="Keep the base model's log-probabilities in memory when they fit in this many MB "
        "(computed once); above it they are recomputed with the adapters disabled at each evaluation.",
    )

    def text_source(self) -> TextSource:
        return TextSource(self.source, self.hub_config, self.split, self.text_field, "forget.")


class TrainingConfig(Section):
    """How the adapters are trained and how often they are evaluated (YAML section `train`)."""

    steps: int = Field(300, gt=0, description="Optimizer updates N.")
    batch_size: int = Field(8, gt=0, description="Sequences per micro-batch (per device).")
    grad_accum: int = Field(
        1, gt=0, description="Micro-batches accumulated per update; effective batch = batch_size*grad_accum*devices."
    )
    context_length: int = Field(128, gt=1, description="Tokens per packed sequence (training and evaluation).")
    lr: float = Field(3e-4, gt=0, description="Peak learning rate.")
    optimizer: Literal["adamw", "adafactor"] = Field("adamw", description="adamw, or adafactor (the paper's).")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay on the adapters.")
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="After warm-up: constant, or cosine to zero."
    )
    warmup_steps: int = Field(20, ge=0, description="Linear warm-up updates; at most train.steps.")
    max_grad_norm: Optional[float] = Field(1.0, gt=0, description="Gradient clipping by norm; null disables.")
    eval_every: int = Field(
        10, gt=0, description="Evaluate L_ft and forgetting every this many updates (and at step 0)."
    )
    ft_eval_sequences: int = Field(32, gt=0, description="Held-out fine-tuning sequences used for L_ft.")
    precision: Literal["auto", "32-true", "bf16-mixed", "bf16-true", "16-mixed"] = Field(
        "auto", description="Lightning precision; auto = bf16-mixed on a bf16-capable GPU, else 32-true."
    )
    num_threads: Optional[int] = Field(None, gt=0, description="CPU threads for torch; null = torch's default.")
    checkpoint_every: int = Field(
        1,
        ge=0,
        description="Save a resumable checkpoint (adapters, optimizer, scheduler, step) every this many "
        "evaluations; the last two are kept. 0 = never (the run cannot be resumed).",
    )

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_within_the_run(cls, warmup_steps: int, info: ValidationInfo) -> int:
        # A longer warm-up never reaches the peak lr, while the run's params (and runs.lr) say it did.
        steps = info.data.get("steps")  # absent when steps itself was invalid: that error is reported instead
        if steps is not None and warmup_steps > steps:
            raise ValueError(
                f"exceeds train.steps = {steps}, so the peak lr is never reached; set train.warmup_steps to at most {steps}"
            )
        return warmup_steps


class MitigationConfig(Section):
    """Fine-tuning schemes that may reduce forgetting (see `forgetlab/finetune/mitigations.py`); all off at 0."""

    replay: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Replay share p: this fraction of the training sequences is pretraining-domain text from "
        "replay_source instead of fine-tuning data (micro-batch g holds floor((g+1)·p·B) − floor(g·p·B) replay rows, "
        "so any p > 0 replays, even when p·B < 1). Cost: no extra compute; (1−p) as many fine-tuning sequences per step. 0 = off.",
    )
    replay_source: str = Field(
        "embedded:pretrain",
        description="Replay text: 'embedded:pretrain' (the embedded base's own pretraining docstrings, never the "
        "forgetting text), a local text/jsonl file, or a hub data set; must differ from forget.source.",
    )
    replay_hub_config: Optional[str] = Field(None, description="Hub configuration of replay_source, if it has several.")
    replay_split: str = Field("train", description="Split of a hub/local replay_source to read.")
    replay_text_field: str = Field("text", description="Column holding the replay text.")
    kl_to_base: float = Field(
        0.0,
        ge=0.0,
        description="λ: adds λ·KL(p_base ‖ p_ft), averaged over the training batch's positions, to the loss; p_base "
        "is the same network with the adapters disabled. Cost: one extra forward pass (no backward) per micro-batch "
        "(measured cost: benchmarks/RESULTS.md). 0 = off.",
    )
    l2_to_base: float = Field(
        0.0,
        ge=0.0,
        description="μ: adds μ·Σ over adapted modules of ‖ΔW‖_F² = scaling²·‖B·A‖_F² (from r×r products, never "
        "forming ΔW) to the loss. Cost: small (measured: benchmarks/RESULTS.md). 0 = off.",
    )

    def replay_text_source(self) -> TextSource:
        return TextSource(
            self.replay_source, self.replay_hub_config, self.replay_split, self.replay_text_field, "mitigation.replay_"
        )


class LightningTrainerConfig(Section):
    """Passed through to `lightning.Trainer` for multi-device runs (YAML section `trainer`)."""

    accelerator: str = Field("auto", description="cpu, gpu, auto, ...")
    devices: Union[int, str] = Field(1, description="Number of devices (or 'auto').")
    strategy: str = Field("auto", description="auto, ddp, fsdp, ...")
    num_nodes: int = Field(1, gt=0, description="Number of nodes.")


class TrackingConfig(Section):
    uri: Optional[str] = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db in the "
        "current folder. An http://host:port server works too.",
    )
    experiment: str = Field("forgetlab", description="MLflow experiment name.")
    run_name: Optional[str] = Field(
        None,
        description="Run name; default {model}-r{rank}-{data}-s{seed} (model: the last part of model.name), plus each "
        "mitigation that is on (e.g. -replay0.05).",
    )
    system_metrics: bool = Field(
        True,
        description="Log MLflow's system metrics (CPU, memory, disk, network; GPU with NVML) every 10 s "
        "while training, as system/* metrics, when psutil is importable.",
    )
    log_merged_model: bool = Field(
        False,
        description="Also log the base with the adapter merged in (a full model folder with its tokenizer, "
        "artifact merged/, loadable without PEFT). As large as the base model.",
    )


PROMPT_FORMATS = Literal["auto", "chat", "template", "plain"]
PROMPT_FORMAT_HELP = (
    "How a prompt is shown to the model: chat = the tokenizer's chat template; template = data.template; "
    "plain = the text as is; auto = chat when the tokenizer has a chat template, else template when the "
    "fine-tuning data is instruction data, else plain."
)


class MultipleChoiceProbeConfig(Section):
    """Knowledge/reasoning probe: accuracy and agreement with the base on multiple-choice questions."""

    source: str = Field(
        "embedded:cloze",
        description="Questions in the ARC format: 'embedded:cloze' (forgetlab's cloze items from the embedded base's "
        "pretraining docstrings), a local .jsonl/.json file, or a hub data set (e.g. allenai/ai2_arc with "
        "hub_config ARC-Challenge).",
    )
    hub_config: Optional[str] = Field(None, description="Hub configuration, e.g. ARC-Challenge.")
    split: str = Field("test", description="Split of a hub data set to read.")
    template: Optional[str] = Field(
        None,
        description="How a question is shown; must contain {question}. Each choice follows it after one space. "
        "null = 'Question: {question}\\nAnswer:' (the evaluation harnesses' ARC prompt), or '{question}' for "
        "embedded:cloze, whose questions are sentence beginnings.",
    )
    max_items: Optional[int] = Field(200, gt=0, description="Use the first this many questions; null = all.")
    batch_size: int = Field(32, gt=0, description="Question-choice sequences per forward pass.")
    every: Optional[int] = Field(
        None,
        gt=0,
        description="Probe every this many updates (and at step 0 and the last step); null = only at "
        "step 0 and the last step. A multiple of train.eval_every puts the probe on evaluation steps.",
    )

    def text_source(self) -> TextSource:
        return TextSource(self.source, self.hub_config, self.split, None, "probes.multiple_choice.")

    @field_validator("template")
    @classmethod
    def _template_has_question(cls, template: Optional[str]) -> Optional[str]:
        if template is not None and "{question}" not in template:
            raise ValueError("must contain '{question}', where the question goes")
        return template


class RefusalProbeConfig(Section):
    """Safety probe: does the fine-tuned model still refuse the harmful requests its base refused?"""

    source: str = Field(
        "embedded:refusal",
        description="Requests in the AdvBench format (csv with columns goal,target): 'embedded:refusal' (a "
        "dozen requests forgetlab ships), a local .csv/.jsonl file, or a hub data set.",
    )
    hub_config: Optional[str] = Field(None, description="Hub configuration, if the data set has several.")
    split: str = Field("train", description="Split of a hub data set to read.")
    prompt_field: str = Field("goal", description="Column holding the request.")
    max_items: Optional[int] = Field(
        50, gt=0, description="Use the first this many requests; null = all (the paper: 50)."
    )
    batch_size: int = Field(16, gt=0, description="Requests generated at once.")
    max_new_tokens: int = Field(48, gt=0, description="Greedy generation stops after this many new tokens (or at EOS).")
    prompt_format: PROMPT_FORMATS = Field("auto", description=PROMPT_FORMAT_HELP)
    judge: Union[str, list[str]] = Field(
        "phrases",
        description="Decides whether an answer is a refusal: 'phrases' = forgetlab's refusal phrases "
        "(forgetlab/probes/judge.py, listed in docs/probes.md); a list of phrases = your own (an answer containing any, "
        "case-insensitive, is a refusal); 'module:function' = a Python callable f(prompt, answer) -> bool.",
    )
    every: Optional[int] = Field(
        None,
        gt=0,
        description="Probe every this many updates (and at step 0 and the last step); null = only at "
        "step 0 and the last step.",
    )

    def text_source(self) -> TextSource:
        return TextSource(self.source, self.hub_config, self.split, None, "probes.refusal.")

    @field_validator("judge")
    @classmethod
    def _judge_is_known(cls, judge: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(judge, list):
            if not judge or any(not phrase.strip() for phrase in judge):
                raise ValueError("a phrase list must hold at least one non-empty phrase")
        elif judge != "phrases" and ":" not in judge:
            raise ValueError("expected 'phrases', a list of phrases, or 'module:function'")
        return judge


DEFAULT_SAMPLE_PROMPTS = [
    "Return the number of",
    "Create a new",
    "This module provides",
    "Explain what a dictionary is.",
    "Write a short poem about the sea.",
]


class SamplesProbeConfig(Section):
    """Generation samples: base and fine-tuned answers to a few fixed prompts, side by side, at the end."""

    prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SAMPLE_PROMPTS),
        min_length=1,
        description="The prompts; the default mixes docstring beginnings (which the embedded base continues) "
        "and instructions.",
    )
    max_new_tokens: int = Field(48, gt=0, description="Greedy generation stops after this many new tokens (or at EOS).")
    prompt_format: PROMPT_FORMATS = Field("auto", description=PROMPT_FORMAT_HELP)


class ProbesConfig(Section):
    """Downstream probes (docs/probes.md); each is off unless its section is given."""

    multiple_choice: Optional[MultipleChoiceProbeConfig] = Field(
        None, description="Multiple-choice accuracy and agreement with the base (ARC format); null = off."
    )
    refusal: Optional[RefusalProbeConfig] = Field(
        None, description="Refusal rate and refusals lost on harmful requests (AdvBench format); null = off."
    )
    samples: Optional[SamplesProbeConfig] = Field(
        None, description="Base and fine-tuned answers to fixed prompts, logged at the end; null = off."
    )


# The old names, for code written before the rename (the YAML sections stay `train` and `trainer`).
TrainConfig = TrainingConfig
TrainerConfig = LightningTrainerConfig


class RunConfig(Section):
    """One fine-tuning run: what to tune, on what, how, and where to log it."""

    seed: int = Field(0, description="Seeds data order, adapter initialisation and dropout.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    forget: ForgetConfig = Field(default_factory=ForgetConfig)
    train: TrainingConfig = Field(default_factory=TrainingConfig)
    mitigation: MitigationConfig = Field(default_factory=MitigationConfig)
    trainer: LightningTrainerConfig = Field(default_factory=LightningTrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)

    def run_name(self) -> str:
        """`tracking.run_name`, else {model}-r{rank}-{data}-s{seed}, plus each mitigation that is on
        (`-replay0.05`, `-kl0.1`, `-l2w0.01`), so runs of different base models, or that differ only in a
        mitigation, are told apart in the UI (`embedded-r4-code-s0`, `embedded-tiny-r4-code-s0`)."""
        if self.tracking.run_name:
            return self.tracking.run_name
        mitigations = {
            "replay": self.mitigation.replay,
            "kl": self.mitigation.kl_to_base,
            "l2w": self.mitigation.l2_to_base,
        }
        suffix = "".join(f"-{label}{value:g}" for label, value in mitigations.items() if value > 0)
        return f"{self.model.label()}-r{self.lora.rank}-{self.data.label()}-s{self.seed}{suffix}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'lora.rank=8' -> (['lora', 'rank'], 8). The value is parsed as YAML so types come out right."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected KEY=VALUE, e.g. lora.rank=8")
    key, raw_value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override '{text}': the key is empty; expected KEY=VALUE, e.g. lora.rank=8")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict; unknown keys are caught later by validation."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"override '{text}': '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def _blame(key: str, source: str, overrides: list[str]) -> str:
    """Who set `key`: the last override whose dotted key is `key`, a section above it, or a key inside
    it (`trian.steps=8` creates the unknown section `trian`), else the file."""
    for text in reversed(overrides):
        dotted = text.split("=", 1)[0].strip()
        if key == dotted or key.startswith(f"{dotted}.") or dotted.startswith(f"{key}."):
            return f"override '{text}'"
    return source


def _describe_validation_error(error: ValidationError, source: str, overrides: list[str] = ()) -> str:
    """First pydantic error -> 'FILE: key.path: what was expected (got X)', or 'override 'K=V': ...' when an override set it."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    source = _blame(key, source, list(overrides))
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = key.rsplit(".", 1)[0] if "." in key else None
        known = _known_keys(parent)
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return f"{source}: unknown key '{key}'{hint}"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    got = first.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    extra = f" ({len(error.errors()) - 1} more problem(s) after fixing this)" if len(error.errors()) > 1 else ""
    return f"{source}: {key}: {message}{got_text}{extra}"


def _known_keys(section_path: Optional[str]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in section_path.split(".") if section_path else []:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        # An optional section (probes.refusal: Optional[RefusalProbeConfig]) lists its own keys too.
        annotation = next(
            (arg for arg in get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)), annotation
        )
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a UserError naming the file."""
    if not path.exists():
        raise UserError(f"{path}: config file not found; check the path (configs live in lightning_configs/)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise UserError(f"{path}: not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    except (OSError, UnicodeDecodeError) as error:  # a folder, no permission, a binary file
        raise UserError(f"{path}: cannot read this config file ({type(error).__name__}); give a YAML file") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections (model:, lora:, ...), got {type(raw).__name__}")
    return raw


def validate_run_config(raw: dict[str, Any], source: str, overrides: list[str] = ()) -> RunConfig:
    """A RunConfig from a raw mapping; the first problem is a UserError naming `source` (or the override that caused it)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise UserError(_describe_validation_error(error, source, overrides)) from None


SWEEP_KEYS = (
    "base",
    "grid",
    "points",
)  # top-level keys of a sweep file (forgetlab/sweeps/spec.py), none of a run config


def _refuse_sweep_file(raw: dict[str, Any], path: Path) -> None:
    if any(key in raw for key in SWEEP_KEYS) and not any(key in raw for key in RunConfig.model_fields):
        raise UserError(f"{path}: this is a sweep file; use `forgetlab sweep --config {path}`")


def load_run_config(path: Optional[Path], overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run config. No path = all defaults (the embedded r4 run)."""
    raw = read_yaml(path) if path is not None else {}
    if path is not None:
        _refuse_sweep_file(raw, path)
    raw = apply_overrides(raw, list(overrides))
    return validate_run_config(raw, str(path) if path else "config", list(overrides))


def to_yaml(config: RunConfig) -> str:
    """The fully resolved config, as saved next to every run so it can be rerun as is."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
