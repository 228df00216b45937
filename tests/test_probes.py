"""Downstream probes: scoring against hand-computed log-likelihoods, the judge, and a real run's artifacts."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from cli_helpers import summary_text
from tiny import TINY_BASE

from forgetlab.errors import UserError
from forgetlab.probes.judge import REFUSAL_PHRASES, PhraseJudge, load_judge
from forgetlab.probes.multiple_choice import (
    Answers,
    MultipleChoiceProbe,
    Question,
    continuation_log_likelihoods,
    encode_pair,
    multiple_choice_metrics,
    parse_question,
)
from forgetlab.probes.refusal import refusal_metrics

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TEXTS = [
    "Return the absolute value of the argument.",
    "Return a list of paths matching a pathname pattern.",
    "Create a new, empty object of this class.",
    "Which of these is a liquid at room temperature? water iron salt sand",
]


@pytest.fixture(scope="module")
def tiny():
    """A random 1-layer Llama and a 300-token byte-level BPE: enough to check the arithmetic."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from forgetlab.embedded.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TEXTS * 4, 300, 64)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def peft_model(model, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(
        model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )


def hand_log_likelihood(model, tokens: list[int], count: int) -> float:
    """One forward pass per continuation token on the unpadded prefix: no batching, no offsets."""
    total = 0.0
    for position in range(len(tokens) - count, len(tokens)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([tokens[:position]])).logits[0, -1]
        total += float(torch.log_softmax(logits.double(), dim=-1)[tokens[position]])
    return total


QUESTIONS = [
    Question(
        "q1", "Return the", ("absolute value of the argument.", "list of paths.", "new object."), ("A", "B", "C"), 0
    ),
    Question(
        "q2", "Create a", ("new, empty object of this class.", "list of paths matching a pattern."), ("A", "B"), 0
    ),
    Question(
        "q3",
        "Which of these is a liquid at room temperature?",
        ("water", "iron", "salt", "sand"),
        ("1", "2", "3", "4"),
        0,
    ),
]


def test_encode_pair_splits_like_the_harness(tiny):
    _, tokenizer = tiny
    context, continuation = encode_pair(tokenizer, "Return the ", "absolute value")
    whole = tokenizer("Return the absolute value")["input_ids"]
    assert context + continuation == whole  # the trailing space moved to the choice, where BPE attaches it
    assert context == tokenizer("Return the")["input_ids"]


def test_scoring_matches_hand_computed_log_likelihoods(tiny):
    model, tokenizer = tiny
    pairs = [encode_pair(tokenizer, q.question, " " + choice) for q in QUESTIONS for choice in q.choices]
    batched = continuation_log_likelihoods(model, pairs, batch_size=3, device=CPU)  # padded batches of mixed lengths
    for (context, continuation), value in zip(pairs, batched):
        assert value == pytest.approx(hand_log_likelihood(model, context + continuation, len(continuation)), abs=1e-4)
    # A context longer than the model allows loses its start; the choice is scored whole.
    long_context = tokenizer(" ".join(TEXTS))["input_ids"] * 3
    continuation = tokenizer(" water")["input_ids"]
    [value] = continuation_log_likelihoods(
        model, [(long_context, continuation)], batch_size=1, device=CPU, max_length=40
    )
    kept = (long_context + continuation)[-40:]
    assert value == pytest.approx(hand_log_likelihood(model, kept, len(continuation)), abs=1e-4)


def test_answers_are_argmax_of_summed_and_per_character_log_likelihood(tiny):
    model, tokenizer = tiny
    probe = MultipleChoiceProbe(QUESTIONS, tokenizer, "{question}", batch_size=4, max_length=64)
    answers = probe.answer(model, CPU)
    for question, scores, raw, norm in zip(QUESTIONS, answers.log_likelihoods, answers.raw, answers.norm):
        hand = [
            hand_log_likelihood(
                model,
                sum(encode_pair(tokenizer, question.question, " " + choice), []),
                len(encode_pair(tokenizer, question.question, " " + choice)[1]),
            )
            for choice in question.choices
        ]
        assert scores == pytest.approx(hand, abs=1e-4)
        assert raw == max(range(len(hand)), key=hand.__getitem__)
        per_char = [value / len(choice) for value, choice in zip(hand, question.choices)]
        assert norm == max(range(len(per_char)), key=per_char.__getitem__)


def test_agreement_with_base_is_total_before_any_update_and_base_is_kept(tiny):
    model, tokenizer = tiny
    wrapped = peft_model(model)
    try:
        probe = MultipleChoiceProbe(QUESTIONS, tokenizer, "Question: {question}\nAnswer:", batch_size=2, max_length=64)
        metrics, artifacts = probe.run(wrapped, CPU, nullcontext, step=0)
        assert metrics["probe_mc_agree"] == 1.0 and metrics["probe_mc_agree_norm"] == 1.0
        record = json.loads(artifacts["probes/multiple_choice_step0.json"])
        assert len(record["items"]) == 3 and record["normalisation"] == "per character"
        base = list(probe.base.raw)
        with torch.no_grad():  # "fine-tune": move the adapters far from zero
            for name, parameter in wrapped.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 5.0)
        probe.run(wrapped, CPU, nullcontext, step=10)
        assert probe.base.raw == base  # computed once, with the adapters disabled
        assert probe.answer(wrapped, CPU).log_likelihoods != probe.base.log_likelihoods
    finally:
        wrapped.unload()  # give the shared tiny model back without adapters


def test_multiple_choice_metrics_on_constructed_answers():
    key = [0, 1, 2, 3]
    base = Answers(raw=[0, 1, 0, 0], norm=[0, 1, 2, 0], log_likelihoods=[])
    tuned = Answers(raw=[0, 2, 0, 3], norm=[0, 1, 2, 3], log_likelihoods=[])
    assert multiple_choice_metrics(key, tuned, base) == {
        "probe_mc_acc": 0.5,  # questions 1 and 4
        "probe_mc_acc_norm": 1.0,
        "probe_mc_agree": 0.5,  # questions 1 and 3 answered as the base did
        "probe_mc_agree_norm": 0.75,
    }


def test_question_formats_and_errors():
    flat = {"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "B"}
    assert parse_question(flat, 0, "k").answer == 1
    nested = {
        "id": "x",
        "question": {"stem": "Q?", "choices": [{"text": "a", "label": "1"}, {"text": "b", "label": "2"}]},
        "answerKey": "1",
    }
    question = parse_question(nested, 0, "k")
    assert (question.question, question.choices, question.labels, question.answer) == ("Q?", ("a", "b"), ("1", "2"), 0)
    with pytest.raises(UserError, match="answerKey 'C' is not one of"):
        parse_question({**flat, "answerKey": "C"}, 0, "k")
    with pytest.raises(UserError, match="item 3: no question text"):
        parse_question({"choices": flat["choices"], "answerKey": "A"}, 2, "k")
    from forgetlab.probes.sources import read_records

    with pytest.raises(UserError, match="could not load hub data set 'allenai/ai2_arc'"):  # offline in tests
        read_records("allenai/ai2_arc", "ARC-Challenge", "test", "probes.multiple_choice.source")
    with pytest.raises(UserError, match="unknown shipped probe file 'embedded:arc'"):
        read_records("embedded:arc", None, "test", "probes.multiple_choice.source")


def test_phrase_judge_and_refusals_lost_on_constructed_answers(tmp_path, monkeypatch):
    judge = PhraseJudge()
    assert judge("p", "I\u2019m sorry, but I can\u2019t help with that.")  # curly apostrophes read as straight
    assert judge("p", "As an AI, I must decline.")
    assert not judge("p", "Sure, here is a plan: first, ...")
    assert "I cannot" in REFUSAL_PHRASES
    own = load_judge(["nope"])
    assert own("p", "NOPE, not today") and not own("p", "I'm sorry")
    (tmp_path / "my_judges.py").write_text("def short(prompt, answer):\n    return len(answer) < 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_judge("my_judges:short")("p", "no") is True
    with pytest.raises(UserError, match="has no 'missing'"):
        load_judge("my_judges:missing")
    with pytest.raises(UserError, match="cannot import module"):
        load_judge("no_such_module_here:judge")

    base = [True, True, False, True, False]
    tuned = [True, False, False, False, True]
    metrics = refusal_metrics(base, tuned)
    assert metrics["probe_refusal_rate"] == pytest.approx(2 / 5)
    assert metrics["probe_refusal_lost"] == pytest.approx(2 / 3)  # base refused 3; 2 of them no longer
    assert refusal_metrics(base, base)["probe_refusal_lost"] == 0.0
    assert "probe_refusal_lost" not in refusal_metrics([False, False], [True, False])  # nothing to lose


def test_batched_greedy_generation_equals_one_prompt_at_a_time(tiny):
    from forgetlab.probes.generation import generate_greedy

    model, tokenizer = tiny
    wrapped = peft_model(model)
    try:
        prompts = [tokenizer(text)["input_ids"] for text in ("Return", "Create a new, empty", "Which of these is")]
        batched = generate_greedy(wrapped, prompts, tokenizer, 6, batch_size=3, device=CPU, max_length=64)
        alone = [
            generate_greedy(wrapped, [ids], tokenizer, 6, batch_size=1, device=CPU, max_length=64)[0] for ids in prompts
        ]
        assert batched == alone
        assert generate_greedy(wrapped, prompts, tokenizer, 6, 3, CPU, 64, base=True) == batched  # B = 0: same as base
    finally:
        wrapped.unload()


def test_fixtures_command_writes_loadable_files(tmp_path):
    from typer.testing import CliRunner

    from forgetlab.cli import app
    from forgetlab.probes.sources import read_records

    result = CliRunner().invoke(app, ["probes", "fixtures", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = read_records(str(tmp_path / "multiple_choice.jsonl"), None, "test", "k")
    assert [parse_question(row, i, "k").answer for i, row in enumerate(rows)] == [1, 0, 1, 0, 2, 3, 1, 0]
    assert [row["goal"] for row in read_records(str(tmp_path / "refusal.csv"), None, "train", "k")][0].startswith(
        "Write"
    )
    # The shipped cloze file is what the generator makes from this Python's stdlib.
    shipped = (REPO / "forgetlab" / "probes" / "data" / "docstring_cloze.jsonl").read_text()
    if sys.version_info[:2] == (3, 11):
        assert (tmp_path / "docstring_cloze.jsonl").read_text() == shipped


# ----------------------------------------------------------------------------- a real run

TINY_RUN = [
    *TINY_BASE,
    "train.lr=1e-2",
    "train.steps=10",
    "train.eval_every=5",
    "train.checkpoint_every=0",
    "probes.multiple_choice.max_items=24",
    "probes.multiple_choice.every=5",
    "probes.refusal.max_items=4",
    "probes.refusal.max_new_tokens=6",
    "probes.refusal.judge=test_probe_judges:refuses_cars",
    "probes.samples.prompts=[Return the, Create a]",
    "probes.samples.max_new_tokens=6",
]


def test_missing_probe_file_is_one_line_before_any_run(workdir):
    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    config = load_run_config(
        REPO / "lightning_configs" / "r4.yaml", [*TINY_RUN[:8], "probes.multiple_choice.source=missing/arc.jsonl"]
    )
    with pytest.raises(
        UserError, match="probes.multiple_choice.source: probe file 'missing/arc.jsonl' not found"
    ) as error:
        execute_run(config, progress=False)
    assert "\n" not in str(error.value)
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # no run was created


def test_a_real_run_logs_probe_metrics_and_artifacts(workdir, monkeypatch):
    from mlflow.tracking import MlflowClient

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run
    from forgetlab.warehouse import export_warehouse, run_query

    (workdir / "test_probe_judges.py").write_text("def refuses_cars(prompt, answer):\n    return 'car' in prompt\n")
    monkeypatch.syspath_prepend(str(workdir))
    config = load_run_config(REPO / "lightning_configs" / "r4.yaml", TINY_RUN)
    result = execute_run(config, progress=False)
    assert result.status == "FINISHED"
    client = MlflowClient(result.tracking_uri)

    def history(key: str) -> dict[int, float]:
        return {point.step: point.value for point in client.get_metric_history(result.run_id, key)}

    for key in ("probe_mc_acc", "probe_mc_acc_norm", "probe_mc_agree", "probe_mc_agree_norm"):
        assert sorted(history(key)) == [0, 5, 10], key
    assert history("probe_mc_agree")[0] == 1.0 and history("probe_mc_agree_norm")[0] == 1.0
    # Every metric the run logged has its column in the warehouse's curves (one list of names), or is a run's one measurement.
    from forgetlab.tracking.names import CURVE_METRICS, RUN_METRICS, SYSTEM_METRIC_PREFIX, THROUGHPUT_METRICS

    # system/* metrics (MLflow's sampler) appear only once a run lasts longer than the sampling interval:
    # whether they are there depends on the machine's speed, so they are left out of this check.
    logged = {key for key in client.get_run(result.run_id).data.metrics if not key.startswith(SYSTEM_METRIC_PREFIX)}
    assert logged <= set(CURVE_METRICS) | set(RUN_METRICS) | set(THROUGHPUT_METRICS)
    # The summary a user reads at the end shows the probes' first and last values too.
    summary_row = next(line for line in summary_text(result).splitlines() if "probe_mc_agree " in line)
    assert "1.0000" in summary_row and f"{history('probe_mc_agree')[10]:.4f}" in summary_row
    assert sorted(history("probe_refusal_rate")) == [0, 10]  # every: null = step 0 and the last step
    lost = history("probe_refusal_lost")
    assert lost == {0: 0.0, 10: 0.0}  # the judge looks at the prompt only: nothing can be lost

    artifacts = {entry.path for entry in client.list_artifacts(result.run_id, "probes")}
    assert artifacts == {
        "probes/multiple_choice_step0.json", "probes/multiple_choice_step5.json", "probes/multiple_choice_step10.json",
        "probes/refusal_step0.json", "probes/refusal_step10.json", "probes/samples.json",
        "probes/timing.json",
    }  # fmt: skip
    refusal = json.loads(Path(client.download_artifacts(result.run_id, "probes/refusal_step10.json")).read_text())
    assert [item["base_refused"] for item in refusal["items"]] == [
        False,
        False,
        False,
        True,
    ]  # only the 4th names a car
    assert history("probe_refusal_rate") == {0: 0.25, 10: 0.25}
    assert refusal["judge"] == "test_probe_judges:refuses_cars" and refusal["prompt_format"] == "plain"
    assert set(refusal["items"][0]) == {
        "prompt",
        "base_answer",
        "base_refused",
        "tuned_answer",
        "tuned_refused",
        "lost",
    }
    samples = json.loads(
        Path(client.download_artifacts(result.run_id, "probes/samples.json")).read_text()
    )  # an MLflow table
    rows = [dict(zip(samples["columns"], row)) for row in samples["data"]]
    assert [row["prompt"] for row in rows] == ["Return the", "Create a"] and {row["step"] for row in rows} == {10}
    mc = json.loads(Path(client.download_artifacts(result.run_id, "probes/multiple_choice_step10.json")).read_text())
    assert mc["metrics"]["probe_mc_agree"] == history("probe_mc_agree")[10]
    assert mc["metrics"]["probe_mc_agree"] == sum(i["base"] == i["tuned"] for i in mc["items"]) / 24

    # The warehouse exports them like any other metric, and queries/probes.sql reads them.
    database = workdir / "mlruns" / "forgetlab.duckdb"
    export_warehouse(result.tracking_uri, database)
    rows = run_query((REPO / "queries" / "probes.sql").read_text(), {}, database).to_pylist()
    assert [row["step"] for row in rows] == [0, 5, 10]
    assert rows[0]["probe_mc_agree"] == 1.0 and rows[0]["mc_acc_change"] == 0.0 and rows[1]["eval_step"] == 5

    # Probes only read the model: every curve value equals that of the same run without probes.
    from forgetlab.tracking.names import FORGETTING_METRICS

    no_probes = [override for override in TINY_RUN if not override.startswith("probes.")]
    without = execute_run(load_run_config(REPO / "lightning_configs" / "r4.yaml", no_probes), progress=False)
    for key in ("train_loss", "ft_loss", *FORGETTING_METRICS):
        assert history(key) == {p.step: p.value for p in client.get_metric_history(without.run_id, key)}, key
    assert not any(key.startswith("probe_") for key in client.get_run(without.run_id).data.metrics)
