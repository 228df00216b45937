"""The forgetting metrics against brute-force definitions computed with a true second copy of the base."""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from forgetlab.config import LoraConfig
from forgetlab.finetune.data import PackedBlocks
from forgetlab.finetune.forgetting import ForgettingEvaluator, held_out_loss
from forgetlab.finetune.model import apply_lora, count_trainable_parameters

VOCAB = 64


def tiny_llama(layers: int = 2) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


def blocks(num: int = 5, length: int = 12) -> PackedBlocks:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (num, length), generator=generator)
    return PackedBlocks(ids, ids.clone())


def perturb_adapters(model: torch.nn.Module) -> None:
    """LoRA B starts at zero (the adapted model equals the base); move it so forgetting is non-zero."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def reference_metrics(base: torch.nn.Module, tuned: torch.nn.Module, data: PackedBlocks) -> dict[str, float]:
    """Straight from the definitions, position by position, with separate base and tuned models."""
    with torch.no_grad():
        base_lp = F.log_softmax(base(input_ids=data.input_ids).logits[:, :-1].double(), -1)
        tuned_lp = F.log_softmax(tuned(input_ids=data.input_ids).logits[:, :-1].double(), -1)
    totals = {"forget_hard": 0.0, "forget_soft": 0.0, "forget_kl": 0.0, "forget_data": 0.0, "forget_agree": 0.0}
    count = 0
    for b in range(base_lp.shape[0]):
        for t in range(base_lp.shape[1]):
            p = base_lp[b, t].exp()
            target = int(base_lp[b, t].argmax())
            totals["forget_hard"] += -float(tuned_lp[b, t, target])
            totals["forget_soft"] += -float((p * tuned_lp[b, t]).sum())
            totals["forget_kl"] += float((p * (base_lp[b, t] - tuned_lp[b, t])).sum())
            totals["forget_data"] += -float(tuned_lp[b, t, int(data.input_ids[b, t + 1])])
            totals["forget_agree"] += top_set_overlap(base_lp[b, t], tuned_lp[b, t])
            count += 1
    return {key: value / count for key, value in totals.items()}


def top_set_overlap(base_lp: torch.Tensor, tuned_lp: torch.Tensor) -> float:
    """|T_tuned ∩ T_base| / |T_tuned ∪ T_base|, T the set of tokens at a model's highest probability."""
    base_top = set(torch.nonzero(base_lp == base_lp.max()).flatten().tolist())
    tuned_top = set(torch.nonzero(tuned_lp == tuned_lp.max()).flatten().tolist())
    return len(base_top & tuned_top) / len(base_top | tuned_top)


@pytest.mark.parametrize("base_cache_mb", [1024, 0], ids=["base-cached", "base-recomputed"])
def test_metrics_match_definitions_after_adapters_move(base_cache_mb):
    base = tiny_llama()
    second_copy_of_base = copy.deepcopy(base)
    tuned = apply_lora(base, LoraConfig(rank=2))
    data = blocks()
    evaluator = ForgettingEvaluator(data, batch_size=2, base_cache_mb=base_cache_mb, vocab_size=VOCAB)
    evaluator.prepare(tuned, torch.device("cpu"))
    perturb_adapters(tuned)
    measured = evaluator.evaluate(tuned, torch.device("cpu"))
    expected = reference_metrics(second_copy_of_base, tuned, data)
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert measured["forget_kl"] > 0.01
    assert measured["forget_soft"] == pytest.approx(
        measured["forget_kl"] + reference_entropy(second_copy_of_base, data), rel=1e-4
    )


def reference_entropy(base, data) -> float:
    with torch.no_grad():
        lp = F.log_softmax(base(input_ids=data.input_ids).logits[:, :-1].double(), -1)
    return float(-(lp.exp() * lp).sum(-1).mean())


def test_at_step_zero_forgetting_is_the_base_itself():
    base = tiny_llama()
    second_copy_of_base = copy.deepcopy(base)
    tuned = apply_lora(base, LoraConfig(rank=4))
    data = blocks()
    evaluator = ForgettingEvaluator(data, batch_size=3, base_cache_mb=1024, vocab_size=VOCAB)
    evaluator.prepare(tuned, torch.device("cpu"))
    measured = evaluator.evaluate(tuned, torch.device("cpu"))
    expected = reference_metrics(second_copy_of_base, second_copy_of_base, data)
    assert measured["forget_kl"] == pytest.approx(0.0, abs=1e-6)
    assert measured["forget_agree"] == 1.0
    assert measured["forget_soft"] == pytest.approx(reference_entropy(second_copy_of_base, data), rel=1e-5)
    assert measured["forget_hard"] == pytest.approx(expected["forget_hard"], rel=1e-5)
    assert measured["forget_data"] == pytest.approx(expected["forget_data"], rel=1e-5)


def test_held_out_loss_ignores_masked_labels():
    model = tiny_llama()
    data = blocks(3, 10)
    masked_labels = data.labels.clone()
    masked_labels[:, :5] = -100
    value = held_out_loss(model, PackedBlocks(data.input_ids, masked_labels), 2, torch.device("cpu"))
    with torch.no_grad():
        logits = model(input_ids=data.input_ids).logits[:, :-1]
    targets = masked_labels[:, 1:]
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
    assert value == pytest.approx(float(expected), rel=1e-5)
    assert math.isfinite(value)


def test_trainable_parameters_count_lora_only():
    model = tiny_llama(layers=2)
    tuned = apply_lora(model, LoraConfig(rank=3))
    # Per layer: q,k,v,o (32->32) 4*(3*32+32*3) + gate,up (32->64) 2*(3*32+64*3) + down (64->32) (3*64+32*3)
    per_layer = 4 * (3 * 32 + 32 * 3) + 2 * (3 * 32 + 64 * 3) + (3 * 64 + 32 * 3)
    assert count_trainable_parameters(tuned) == 2 * per_layer


def test_layer_subset_adapts_only_those_layers():
    tuned = apply_lora(tiny_llama(layers=3), LoraConfig(rank=2, layers=[1]))
    adapted = {name.split("layers.")[1].split(".")[0] for name, p in tuned.named_parameters() if p.requires_grad}
    assert adapted == {"1"}


def test_chunked_vocabulary_work_equals_unchunked():
    """A few positions at a time (as for a 150k vocabulary) gives the same numbers as all at once."""
    tuned = apply_lora(tiny_llama(), LoraConfig(rank=2))
    perturb_adapters(tuned)
    data = blocks(5, 12)
    results = {}
    # one sequence (11 positions) per chunk, then 3 positions of one sequence per chunk (4 chunks, the last short)
    for label, chunk_elements in (("whole", 1 << 30), ("chunked", 11 * VOCAB), ("positions", 3 * VOCAB)):
        for cache_mb in (1024, 0):
            evaluator = ForgettingEvaluator(data, 2, cache_mb, VOCAB, chunk_elements=chunk_elements)
            evaluator.prepare(tuned, torch.device("cpu"))
            results[label, cache_mb] = evaluator.evaluate(tuned, torch.device("cpu"))
        results[label, "ft"] = held_out_loss(tuned, data, 2, torch.device("cpu"), chunk_elements=chunk_elements)
    for label in ("chunked", "positions"):
        for key in (1024, 0):
            for name, value in results["whole", key].items():
                assert results[label, key][name] == pytest.approx(value, rel=1e-6, abs=1e-7), (label, key, name)
        assert results[label, "ft"] == pytest.approx(results["whole", "ft"], rel=1e-6)


def test_each_forward_pass_enters_a_fresh_precision_context():
    """Lightning's mixed/half precision contexts are generators: entering one twice fails. Passes get one each."""
    from contextlib import contextmanager

    entered = []

    @contextmanager
    def forward_context():
        entered.append(1)
        yield

    tuned = apply_lora(tiny_llama(), LoraConfig(rank=2))
    data = blocks(5, 12)
    evaluator = ForgettingEvaluator(data, 2, 0, VOCAB)  # base recomputed: two passes per batch
    evaluator.evaluate(tuned, torch.device("cpu"), forward_context)
    assert len(entered) == 2 * 3
    held_out_loss(tuned, data, 2, torch.device("cpu"), forward_context)
    assert len(entered) == 2 * 3 + 3


class GivenPredictions(torch.nn.Module):
    """A stand-in for a PEFT model whose base and adapted logits are functions of the input ids."""

    def __init__(self, base, tuned):
        super().__init__()
        self.base, self.tuned, self.adapted = base, tuned, True

    @contextmanager
    def disable_adapter(self):
        self.adapted = False
        try:
            yield
        finally:
            self.adapted = True

    def forward(self, input_ids):
        return SimpleNamespace(logits=(self.tuned if self.adapted else self.base)(input_ids))


def predicts_next(input_ids, ties: int = 1, offset: int = 1):
    """Logits whose top tokens are input + offset .. input + offset + ties - 1 (mod VOCAB), all equally likely."""
    logits = torch.zeros(*input_ids.shape, VOCAB)
    for shift in range(offset, offset + ties):
        logits += 5.0 * F.one_hot((input_ids + shift) % VOCAB, VOCAB)
    return logits


@pytest.mark.parametrize("base_cache_mb", [1024, 0], ids=["base-cached", "base-recomputed"])
def test_a_model_collapsed_to_uniform_predictions_does_not_agree_with_its_base(base_cache_mb):
    """Uniform predictions tie every token at the top: that is not agreement (it read 1 when ties counted)."""
    model = GivenPredictions(base=predicts_next, tuned=lambda ids: torch.zeros(*ids.shape, VOCAB))
    evaluator = ForgettingEvaluator(blocks(), batch_size=2, base_cache_mb=base_cache_mb, vocab_size=VOCAB)
    evaluator.prepare(model, torch.device("cpu"))
    measured = evaluator.evaluate(model, torch.device("cpu"))
    assert measured["forget_agree"] == pytest.approx(1 / VOCAB)
    assert measured["forget_hard"] == pytest.approx(math.log(VOCAB))


@pytest.mark.parametrize(
    "tuned, expected",
    [
        (lambda ids: predicts_next(ids, ties=2), 1.0),  # the same two tied tokens: the same prediction
        (lambda ids: predicts_next(ids, ties=1), 0.5),  # one of the base's two
        (lambda ids: predicts_next(ids, ties=2, offset=2), 1 / 3),  # {x+2, x+3} against {x+1, x+2}
        (lambda ids: predicts_next(ids, ties=1, offset=3), 0.0),  # none of them
    ],
    ids=["same-ties", "one-of-two", "overlapping-ties", "disjoint"],
)
def test_agreement_where_the_base_itself_has_ties_compares_the_top_sets(tuned, expected):
    model = GivenPredictions(base=lambda ids: predicts_next(ids, ties=2), tuned=tuned)
    data = blocks()
    evaluator = ForgettingEvaluator(data, batch_size=2, base_cache_mb=1024, vocab_size=VOCAB, chunk_elements=3 * VOCAB)
    evaluator.prepare(model, torch.device("cpu"))
    assert evaluator.evaluate(model, torch.device("cpu"))["forget_agree"] == pytest.approx(expected)


def test_a_run_whose_base_predictions_exceed_the_budget_says_what_to_set(workdir, capsys):
    """Too small a forget.base_cache_mb doubles every evaluation's time: the run says so once, with the value to set."""
    import re

    from tiny import R4, TINY_BASE

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    overrides = [*TINY_BASE, "train.steps=2", "train.eval_every=2", "forget.num_sequences=20", "forget.base_cache_mb=1"]
    result = execute_run(load_run_config(R4, overrides), progress=True)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: the base's predictions")]
    assert len(notes) == 1, notes
    needed = int(re.search(r"set forget\.base_cache_mb=(\d+) to cache them", notes[0]).group(1))
    assert needed > 1 and f"need {needed} MB, more than forget.base_cache_mb = 1" in notes[0]
    assert result.status == "FINISHED"
