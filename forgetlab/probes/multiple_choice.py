"""Multiple-choice probe: accuracy against the key, and agreement with the base model's answers.

Each choice is scored by its log-likelihood given the question, as the evaluation harnesses do
(no generation): the question is shown through `template`, the choice follows after one space,
and log p(choice tokens | question) is summed over the choice's tokens. Two answers per question:

- `acc`:      the choice with the highest summed log-likelihood;
- `acc_norm`: the highest log-likelihood divided by the choice's length in *characters* (the
  lm-evaluation-harness `acc_norm`), which removes the bias towards short choices without
  depending on the tokenizer.

Metrics (logged as `probe_mc_*`): `acc`/`acc_norm` = share of questions answered as the key says;
`agree`/`agree_norm` = share answered as the base answers them (the base is the same network with
the adapters disabled, scored once). The paper's point: ARC accuracy barely moved (54.1 -> 52.0)
while agreement with the base fell to 67%.

Tokenisation follows lm-evaluation-harness: question and choice are encoded together and the
choice's tokens are those after the question's own encoding; a question longer than the model's
context loses its start.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Optional, Sequence

import torch
import torch.nn.functional as F

import forgetlab.tracking.names as names
from forgetlab.errors import UserError

HARNESS_TEMPLATE = "Question: {question}\nAnswer:"
CLOZE_TEMPLATE = "{question}"
CHOICE_DELIMITER = " "


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: tuple[str, ...]
    labels: tuple[str, ...]
    answer: int  # index into choices


def parse_question(row: dict[str, Any], index: int, key: str) -> Question:
    """One ARC-format row: question (a string, or ARC's {"stem", "choices"}), choices {text, label}, answerKey."""
    where = f"{key}: item {index + 1}"
    question = row.get("question")
    choices = row.get("choices")
    if isinstance(question, dict):  # ARC's own jsonl: {"question": {"stem": ..., "choices": [{"text", "label"}]}}
        if choices is None and isinstance(question.get("choices"), list):
            choices = {
                "text": [c.get("text") for c in question["choices"]],
                "label": [c.get("label") for c in question["choices"]],
            }
        question = question.get("stem")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: no question text (expected 'question' as a string or {{'stem': ...}})")
    if not isinstance(choices, dict) or not isinstance(choices.get("text"), list) or len(choices["text"]) < 2:
        raise UserError(f"{where}: expected 'choices' as {{'text': [...], 'label': [...]}} with at least two choices")
    texts = [str(text) for text in choices["text"]]
    labels = [str(label) for label in (choices.get("label") or [chr(ord("A") + i) for i in range(len(texts))])]
    if len(labels) != len(texts):
        raise UserError(f"{where}: {len(texts)} choice texts but {len(labels)} labels")
    if any(not text.strip() for text in texts):
        raise UserError(f"{where}: a choice is empty")
    answer_key = str(row.get("answerKey", "")).strip()
    if answer_key not in labels:
        raise UserError(f"{where}: answerKey '{answer_key}' is not one of the labels {labels}")
    return Question(str(row.get("id", index)), question, tuple(texts), tuple(labels), labels.index(answer_key))


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-evaluation-harness splits them.

    Trailing spaces of the context move to the continuation (BPE tokenizers attach a space to the
    following word); the pair is encoded together and split at the context's own token count, so
    the continuation's tokens are exactly what the model would read after the context.
    """
    spaces = len(context) - len(context.rstrip(" "))
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = list(tokenizer(context + continuation)["input_ids"])
    context_length = len(tokenizer(context)["input_ids"])
    context_length = min(context_length, len(whole) - 1)  # a merge across the boundary must leave a choice token
    return whole[:context_length], whole[context_length:]


@torch.no_grad()
def continuation_log_likelihoods(
    model,
    pairs: Sequence[tuple[list[int], list[int]]],
    batch_size: int,
    device: torch.device,
    max_length: Optional[int] = None,
    forward_context: Callable[[], ContextManager] = nullcontext,
) -> list[float]:
    """Sum over each continuation's tokens of log p(token | everything before it), in nats, batched."""
    sequences = []
    for context, continuation in pairs:
        tokens = list(context) + list(continuation)
        if max_length is not None and len(tokens) > max_length:
            tokens = tokens[-max_length:]  # the context loses its start; the continuation is kept whole
        if len(continuation) >= len(tokens):
            raise UserError(f"a choice of {len(continuation)} tokens does not fit the model's context of {max_length}")
        sequences.append((tokens, len(continuation)))
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))  # similar lengths share a batch
    results = [0.0] * len(sequences)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        width = max(len(sequences[i][0]) for i in indices)
        input_ids = torch.zeros(len(indices), width, dtype=torch.long)
        attention = torch.zeros(len(indices), width, dtype=torch.long)
        for row, i in enumerate(indices):
            tokens = sequences[i][0]
            input_ids[row, : len(tokens)] = torch.tensor(tokens)
            attention[row, : len(tokens)] = 1
        with forward_context():  # a fresh context per pass: Lightning's can be entered once only
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        for row, i in enumerate(indices):
            tokens, count = sequences[i]
            end = len(tokens)
            # Logits at position t predict token t+1: the continuation's tokens end-count..end-1.
            log_probs = F.log_softmax(logits[row, end - count - 1 : end - 1].float(), dim=-1)
            targets = torch.tensor(tokens[end - count :], device=log_probs.device)
            results[i] = float(log_probs.gather(-1, targets.unsqueeze(-1)).sum())
    return results


@dataclass
class Answers:
    """Per question: the chosen index by summed log-likelihood, and by log-likelihood per character."""

    raw: list[int]
    norm: list[int]
    log_likelihoods: list[list[float]] = field(repr=False)


class MultipleChoiceProbe:
    """Scores a fixed set of questions; keeps the base's answers from the first call."""

    name = "multiple_choice"

    def __init__(
        self, questions: Sequence[Question], tokenizer, template: str, batch_size: int, max_length: Optional[int]
    ):
        self.questions = list(questions)
        self.template = template
        self.batch_size = batch_size
        self.max_length = max_length
        self.pairs = [
            encode_pair(tokenizer, template.format(question=q.question), CHOICE_DELIMITER + choice)
            for q in self.questions
            for choice in q.choices
        ]
        self.base: Optional[Answers] = None

    def answer(
        self, model, device: torch.device, forward_context: Callable[[], ContextManager] = nullcontext
    ) -> Answers:
        was_training = model.training
        model.eval()
        flat = continuation_log_likelihoods(
            model, self.pairs, self.batch_size, device, self.max_length, forward_context
        )
        model.train(was_training)
        raw, norm, grouped, offset = [], [], [], 0
        for q in self.questions:
            scores = flat[offset : offset + len(q.choices)]
            offset += len(q.choices)
            per_char = [score / len(choice) for score, choice in zip(scores, q.choices)]
            raw.append(max(range(len(scores)), key=scores.__getitem__))  # first maximum on a tie
            norm.append(max(range(len(per_char)), key=per_char.__getitem__))
            grouped.append(scores)
        return Answers(raw, norm, grouped)

    def base_answers(
        self, model, device: torch.device, forward_context: Callable[[], ContextManager] = nullcontext
    ) -> Answers:
        if self.base is None:
            with model.disable_adapter():
                self.base = self.answer(model, device, forward_context)
        return self.base

    def run(self, model, device: torch.device, autocast_factory, step: int) -> tuple[dict[str, float], dict[str, str]]:
        """Metrics at this step, and the per-question record as a JSON artifact."""
        base = self.base_answers(model, device, autocast_factory)
        tuned = self.answer(model, device, autocast_factory)
        metrics = multiple_choice_metrics([q.answer for q in self.questions], tuned, base)
        records = [
            {
                "id": q.id,
                "question": q.question,
                "choices": dict(zip(q.labels, q.choices)),
                "answer": q.labels[q.answer],
                "base": q.labels[base.raw[i]],
                "tuned": q.labels[tuned.raw[i]],
                "base_norm": q.labels[base.norm[i]],
                "tuned_norm": q.labels[tuned.norm[i]],
                "log_likelihood": [round(value, 4) for value in tuned.log_likelihoods[i]],
            }
            for i, q in enumerate(self.questions)
        ]
        artifact = {
            "step": step,
            "metrics": metrics,
            "template": self.template,
            "normalisation": "per character",
            "items": records,
        }
        return metrics, {
            names.MULTIPLE_CHOICE_ARTIFACT.format(step=step): json.dumps(artifact, indent=1, ensure_ascii=False)
        }


def multiple_choice_metrics(key: Sequence[int], tuned: Answers, base: Answers) -> dict[str, float]:
    count = len(key)

    def share(a: Sequence[int], b: Sequence[int]) -> float:
        return sum(x == y for x, y in zip(a, b)) / count

    return {
        names.PROBE_MC_ACC: share(tuned.raw, key),
        names.PROBE_MC_ACC_NORM: share(tuned.norm, key),
        names.PROBE_MC_AGREE: share(tuned.raw, base.raw),
        names.PROBE_MC_AGREE_NORM: share(tuned.norm, base.norm),
    }
