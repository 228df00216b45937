"""The probes in a run: built and checked before the run exists, run by a Lightning callback.

`load_probes` reads every probe file, tokenises every prompt and loads the judge, so a missing
file or a bad judge is a `UserError` before any MLflow run is created. `ProbeCallback` runs each
probe at step 0, every `every` updates and at the last step (samples: the last step only), logs
its metrics through the run's `log_metrics` (the same buffer as the forgetting curve), writes its
artifacts (text, or an MLflow table when a probe gives {column: values}) and flushes. Only global rank 0 probes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Optional

import lightning as L

from forgetlab.config import DataConfig, ProbesConfig
from forgetlab.errors import UserError
from forgetlab.finetune.evaluation_schedule import EvaluationSchedule
from forgetlab.probes.generation import check_room, encode_prompt, resolve_prompt_format
from forgetlab.probes.judge import load_judge
from forgetlab.probes.multiple_choice import CLOZE_TEMPLATE, HARNESS_TEMPLATE, MultipleChoiceProbe, parse_question
from forgetlab.probes.refusal import RefusalProbe
from forgetlab.probes.samples import SamplesProbe
from forgetlab.probes.sources import read_source_records
from forgetlab.tracking.names import PROBE_TIMING_ARTIFACT
from forgetlab.tracking.sink import MetricsSink


@dataclass
class ScheduledProbe:
    probe: (
        object  # has .name and .run(model, device, autocast_factory, step) -> (metrics, {artifact path: text or table})
    )
    schedule: EvaluationSchedule


def _multiple_choice(config, tokenizer, max_length: Optional[int]) -> MultipleChoiceProbe:
    key = "probes.multiple_choice.source"
    rows = read_source_records(config.text_source())
    if config.max_items is not None:
        rows = rows[: config.max_items]
    if not rows:
        raise UserError(f"{key}: '{config.source}' holds no questions")
    questions = [parse_question(row, index, key) for index, row in enumerate(rows)]
    template = config.template or (CLOZE_TEMPLATE if config.source == "embedded:cloze" else HARNESS_TEMPLATE)
    probe = MultipleChoiceProbe(questions, tokenizer, template, config.batch_size, max_length)
    longest = max(len(continuation) for _, continuation in probe.pairs)
    if max_length is not None and longest >= max_length:
        raise UserError(f"{key}: a choice of {longest} tokens does not fit the model's context of {max_length}")
    return probe


def _refusal(config, tokenizer, data: DataConfig, data_kind: str, max_length: Optional[int]) -> RefusalProbe:
    key = "probes.refusal"
    check_room(config.max_new_tokens, max_length, f"{key}.max_new_tokens")
    rows = read_source_records(config.text_source())
    if rows and config.prompt_field not in rows[0]:
        raise UserError(
            f"{key}.prompt_field: no column '{config.prompt_field}' in '{config.source}' (columns: {', '.join(rows[0])})"
        )
    requests = [
        str(row[config.prompt_field]).strip() for row in rows if str(row.get(config.prompt_field) or "").strip()
    ]
    if config.max_items is not None:
        requests = requests[: config.max_items]
    if not requests:
        raise UserError(f"{key}.source: '{config.source}' holds no requests")
    prompt_format = resolve_prompt_format(config.prompt_format, tokenizer, data_kind)
    judge = load_judge(config.judge, f"{key}.judge")
    judge_name = config.judge if isinstance(config.judge, str) else f"phrases: {', '.join(config.judge)}"
    return RefusalProbe(
        requests=requests,
        prompts=[encode_prompt(text, tokenizer, prompt_format, data.template) for text in requests],
        prompt_format=prompt_format,
        tokenizer=tokenizer,
        judge=judge,
        judge_name=judge_name,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        max_length=max_length,
    )


def _samples(config, tokenizer, data: DataConfig, data_kind: str, max_length: Optional[int]) -> SamplesProbe:
    check_room(config.max_new_tokens, max_length, "probes.samples.max_new_tokens")
    prompt_format = resolve_prompt_format(config.prompt_format, tokenizer, data_kind)
    return SamplesProbe(
        texts=list(config.prompts),
        prompts=[encode_prompt(text, tokenizer, prompt_format, data.template) for text in config.prompts],
        prompt_format=prompt_format,
        tokenizer=tokenizer,
        max_new_tokens=config.max_new_tokens,
        max_length=max_length,
    )


def load_probes(
    config: ProbesConfig, tokenizer, data: DataConfig, data_kind: str, max_length: Optional[int]
) -> list[ScheduledProbe]:
    """The configured probes, every input checked; [] when none is configured."""
    probes: list[ScheduledProbe] = []
    if config.multiple_choice is not None:
        probe = _multiple_choice(config.multiple_choice, tokenizer, max_length)
        probes.append(ScheduledProbe(probe, EvaluationSchedule(config.multiple_choice.every)))
    if config.refusal is not None:
        probe = _refusal(config.refusal, tokenizer, data, data_kind, max_length)
        probes.append(ScheduledProbe(probe, EvaluationSchedule(config.refusal.every)))
    if config.samples is not None:
        probe = _samples(config.samples, tokenizer, data, data_kind, max_length)
        probes.append(ScheduledProbe(probe, EvaluationSchedule(None, at_start=False)))  # the last step only
    return probes


class ProbeCallback(L.Callback):
    """Runs the probes after the forgetting curve's evaluation at the same step (listed after it: finetune/callbacks.py)."""

    def __init__(self, probes: list[ScheduledProbe], sink: MetricsSink):
        self.probes = probes
        self.sink = sink  # the run's metrics; writes nothing on ranks other than 0
        self.seconds: dict[str, float] = {}  # wall time spent in each probe, logged at the end (probes/timing.json)

    def _run(self, trainer: L.Trainer, module: L.LightningModule, scheduled: ScheduledProbe) -> None:
        step = trainer.global_step
        scheduled.schedule.mark(step)
        if not trainer.is_global_zero:
            return
        started = time.perf_counter()
        metrics, artifacts = scheduled.probe.run(
            module.model, module.device, trainer.precision_plugin.forward_context, step
        )
        self.seconds[scheduled.probe.name] = self.seconds.get(scheduled.probe.name, 0.0) + time.perf_counter() - started
        if metrics:
            self.sink.log(metrics, step)
        for path, content in artifacts.items():
            if isinstance(content, dict):  # {column: values}: an MLflow table (probes/samples.py)
                self.sink.log_table(content, path)
            else:
                self.sink.log_text(content, path)
        self.sink.flush()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        for scheduled in self.probes:
            if scheduled.schedule.due_at_start(trainer.global_step):
                self._run(trainer, module, scheduled)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int
    ) -> None:
        for scheduled in self.probes:
            if scheduled.schedule.due(trainer.global_step, trainer.max_steps):
                self._run(trainer, module, scheduled)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.seconds:
            timing = {
                "seconds": {name: round(value, 3) for name, value in self.seconds.items()},
                "steps": trainer.global_step,
            }
            self.sink.log_text(json.dumps(timing, indent=1), PROBE_TIMING_ARTIFACT)
