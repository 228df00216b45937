"""Mitigations: replay batches, the KL and L2 penalties, and `forgetlab fit --by` comparisons.

Runs are tiny (embedded-tiny, 10 updates, in-process) and fits use small bootstraps, so the file
stays well under a minute and a half on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import summary_text
from tiny import R4, TINY_BASE

from forgetlab.errors import UserError
from forgetlab.finetune.training import SeededBatchSampler

REPO = Path(__file__).resolve().parents[1]
TINY = [
    *TINY_BASE,
    "train.lr=1e-3",
    "train.steps=10",
    "train.eval_every=5",
    "train.checkpoint_every=0",
]
METRICS = ("train_loss", "ft_loss", "forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree")


# --- replay batches ---------------------------------------------------------------------------


def sampler(**replay) -> SeededBatchSampler:
    return SeededBatchSampler(
        num_examples=37, batch_size=8, micro_batches_per_epoch=10, total_micro_batches=400, seed=3, **replay
    )


def test_replay_zero_leaves_every_batch_unchanged():
    plain, zero = sampler(), sampler(replay_share=0.0, replay_examples=50)
    assert [plain.micro_batch(i) for i in range(200)] == [zero.micro_batch(i) for i in range(200)]


@pytest.mark.parametrize("share, expected_rows", [(0.01, 16), (0.05, 80), (0.2, 320)])
def test_replay_share_is_exact_and_a_pure_function_of_the_step(share, expected_rows):
    plain, mixed = sampler(), sampler(replay_share=share, replay_examples=50)
    batches = [mixed.micro_batch(i) for i in range(200)]
    replayed = [[row - 37 for row in batch if row >= 37] for batch in batches]
    assert sum(len(rows) for rows in replayed) == expected_rows  # floor(200 · p · 8), even where p·8 < 1
    assert all(0 <= row < 50 for rows in replayed for row in rows)
    for i, batch in enumerate(batches):  # the fine-tuning rows kept are the plain stream's, in place
        kept = [row for row in batch if row < 37]
        assert kept == plain.micro_batch(i)[: len(kept)] and len(batch) == 8
    fresh = sampler(replay_share=share, replay_examples=50)  # e.g. after a resume
    assert [fresh.micro_batch(i) for i in (150, 3, 99)] == [batches[150], batches[3], batches[99]]


# --- tiny runs: replay 0 is no replay; replay and penalties are logged and exported -------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory, forgetlab_cache):
    import os

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    folder = tmp_path_factory.mktemp("mitigation-runs")
    previous = Path.cwd()
    os.chdir(folder)
    try:

        def run(*overrides: str):
            return execute_run(load_run_config(R4, [*TINY, *overrides]), progress=False)

        results = {
            "plain": run(),
            # A replay source that does not exist: p = 0 must not even read it.
            "zero": run("mitigation.replay=0.0", "mitigation.replay_source=no/such/file.txt"),
            "mitigated": run("mitigation.replay=0.25", "mitigation.kl_to_base=0.5", "mitigation.l2_to_base=0.1"),
        }
    finally:
        os.chdir(previous)
    return folder, {name: result.run_id for name, result in results.items()}, results


def histories(folder: Path, run_id: str) -> dict[str, dict[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    keys = (*METRICS, "penalty_kl", "penalty_l2")
    return {key: {m.step: m.value for m in client.get_metric_history(run_id, key)} for key in keys}


def test_replay_zero_run_equals_the_run_without_replay(runs):
    folder, ids, _ = runs
    plain, zero, mitigated = (histories(folder, ids[k]) for k in ("plain", "zero", "mitigated"))
    for key in METRICS:
        assert plain[key] == zero[key], key
    assert mitigated["train_loss"] != plain["train_loss"]  # a quarter of each batch is other text
    assert not plain["penalty_kl"] and not plain["penalty_l2"]  # off: not logged


def test_penalties_are_logged_like_train_loss(runs):
    folder, ids, results = runs
    logged = histories(folder, ids["mitigated"])
    assert sorted(logged["penalty_kl"]) == sorted(logged["penalty_l2"]) == [5, 10]
    assert all(value > 0 for key in ("penalty_kl", "penalty_l2") for value in logged[key].values())
    assert logged["penalty_l2"][10] > logged["penalty_l2"][5]  # the adapters move away from 0
    # The run's closing summary shows them (and the plain run's does not).
    assert f"{logged['penalty_l2'][10]:.4f}" in summary_text(results["mitigated"])
    assert "penalty" not in summary_text(results["plain"])


def test_warehouse_lifts_mitigations_and_tradeoff_query_reads_them(runs):
    from forgetlab.warehouse import export_warehouse, load_query, run_query

    folder, ids, _ = runs
    db = folder / "mlruns" / "forgetlab.duckdb"
    export_warehouse(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}", db)
    rows = run_query("SELECT run_id, replay, kl_to_base, l2_to_base FROM runs WHERE kind = 'run'", {}, db).to_pylist()
    settings = {row["run_id"]: (row["replay"], row["kl_to_base"], row["l2_to_base"]) for row in rows}
    assert settings[ids["mitigated"]] == (0.25, 0.5, 0.1) and settings[ids["plain"]] == (0.0, 0.0, 0.0)
    points = run_query("SELECT * FROM points", {}, db)
    assert points.column_names[:10] == [
        "dataset",
        "run_id",
        "rank",
        "P",
        "N",
        "L_ft",
        "L_f_hard",
        "L_f_soft",
        "L_f_kl",
        "L_f_data",
    ]
    assert set(points.column("replay").to_pylist()) == {0.0, 0.25}
    curves = run_query(
        "SELECT step, penalty_kl FROM curves WHERE run_id = $run ORDER BY step", {"run": ids["mitigated"]}, db
    )
    assert curves.column("penalty_kl").to_pylist()[0] is None and curves.column("penalty_kl").to_pylist()[-1] > 0
    tradeoff = run_query(load_query(REPO / "queries" / "tradeoff.sql").sql, {"min_step": 0}, db).to_pylist()
    replay_row = next(r for r in tradeoff if r["replay"] == 0.25)
    baseline = next(r for r in tradeoff if (r["replay"], r["kl_to_base"], r["l2_to_base"]) == (0, 0, 0))
    assert baseline["less_forgetting"] == 0 and baseline["runs"] == 2  # plain and replay=0 pool
    assert replay_row["less_forgetting"] == pytest.approx(baseline["L_f_at"] - replay_row["L_f_at"], abs=2e-4)
    # The fits' default points query keeps one setting when asked (-1 = any).
    laws = load_query(REPO / "queries" / "laws.sql")

    def runs_of(**params) -> set[str]:
        return set(run_query(laws.sql, {**laws.defaults, "min_step": 0, **params}, db).column("run_id").to_pylist())

    assert runs_of() == set(ids.values())
    assert runs_of(replay=0.25) == runs_of(kl_to_base=0.5) == {ids["mitigated"]}
    assert runs_of(l2_to_base=0) == {ids["plain"], ids["zero"]}


def test_forgetting_text_is_refused_as_replay_text(workdir):
    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    config = load_run_config(R4, [*TINY, "mitigation.replay=0.1", "mitigation.replay_source=embedded:forget"])
    with pytest.raises(UserError, match="is the forgetting text"):
        execute_run(config, progress=False)
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # refused before any run was created


def test_replay_share_must_be_below_one():
    from forgetlab.config import load_run_config

    with pytest.raises(UserError, match="mitigation.replay"):
        load_run_config(R4, ["mitigation.replay=1.0"])


# --- the penalties on a tiny model --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lora(forgetlab_cache):
    from forgetlab.config import LoraConfig, ModelConfig
    from forgetlab.finetune.model import apply_lora, load_base

    torch.manual_seed(0)
    base = load_base(ModelConfig(name="embedded-tiny"), progress=False)
    return apply_lora(base.model, LoraConfig(rank=4))


def _randomise_adapters(model, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def test_kl_penalty_is_zero_at_step_0_and_its_gradient_reaches_only_the_adapters(tiny_lora):
    from forgetlab.finetune.mitigations import kl_to_base

    model = tiny_lora
    input_ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert float(kl_to_base(model, input_ids, model(input_ids=input_ids).logits)) == pytest.approx(0.0, abs=1e-7)

    _randomise_adapters(model)
    model.zero_grad(set_to_none=True)
    penalty = kl_to_base(model, input_ids, model(input_ids=input_ids).logits)
    assert float(penalty.detach()) > 0
    penalty.backward()
    grads = {name: parameter.grad for name, parameter in model.named_parameters()}
    adapters = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert adapters and all("lora_" in name for name in adapters)
    assert all(grads[name] is None for name in grads if name not in adapters)  # the base gets nothing
    assert all(grads[name] is not None and grads[name].abs().sum() > 0 for name in adapters)
    model.zero_grad(set_to_none=True)


def test_l2_penalty_matches_the_dense_update(tiny_lora):
    from peft.tuners.lora import LoraLayer

    from forgetlab.finetune.mitigations import adapter_update_norm_sq

    model = tiny_lora
    _randomise_adapters(model, scale=0.3)
    dense, layers = 0.0, 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            delta = module.scaling["default"] * module.lora_B["default"].weight @ module.lora_A["default"].weight
            assert torch.allclose(delta, module.get_delta_weight("default"), atol=1e-6)
            dense += float((delta.detach().double() ** 2).sum())
            layers += 1
    # Both sides are 0 when no LoRA layer is found: the comparison must be over every adapted layer.
    adapted = sum(1 for name, _ in model.named_parameters() if name.endswith("lora_A.default.weight"))
    assert layers == adapted > 0 and dense > 0
    assert float(adapter_update_norm_sq(model)) == pytest.approx(dense, rel=1e-5)


# --- fit --by -----------------------------------------------------------------------------------


def synthetic_points(folder: Path) -> Path:
    """Two replay groups on the same L_f–L_ft slope; replay = 0.2 forgets 0.2 nats less."""
    rng = np.random.default_rng(0)
    rows = []
    for replay, shift in ((0.0, 0.0), (0.2, -0.2)):
        for rank in (1, 4, 16, 64):
            for seed in (0, 1):
                run = f"r{rank}-p{replay}-s{seed}"
                for N in range(60, 301, 20):
                    L_ft = 3.0 - 0.1 * np.log(rank) - 0.4 * np.log(N / 50) + rng.normal(0, 0.01)
                    L_f = -1.5 * L_ft + 8.0 + shift + rng.normal(0, 0.01)
                    rows.append(
                        dict(
                            dataset="code",
                            run_id=run,
                            rank=rank,
                            P=1000 * rank,
                            N=N,
                            L_ft=L_ft,
                            L_f_soft=L_f,
                            replay=replay,
                        )
                    )
    pd.DataFrame(rows).to_csv(folder / "points.csv", index=False)
    (folder / "points.sql").write_text(
        "-- synthetic points in two replay groups\nSELECT * FROM read_csv('points.csv')\n"
    )
    return folder / "points.sql"


def test_fit_by_replay_reports_the_difference_with_an_interval(workdir):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    query = synthetic_points(workdir)
    done = CliRunner().invoke(
        app, ["fit", "--query", str(query), "--by", "replay", "--law", "linear", "--variant", "soft", "-B", "60", "--no-store", "--no-validation",
              "--json", "fits.json", "--figures", "figs", "--at-ft-loss", "2.5"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "fits by replay" in done.output and "code (replay=0.2)" in done.output
    output = json.loads((workdir / "fits.json").read_text())
    assert [fit["extra"] for fit in output["fits"]] == [
        {"by": "replay", "group": "0"},
        {"by": "replay", "group": "0.2"},
    ]
    [row] = [r for r in output["comparison"] if r["group"] == "0.2" and r["quantity"] == "L_f at L_ft=2.5"]
    low, high = row["difference_interval"]
    assert row["difference"] == pytest.approx(-0.2, abs=0.02) and low <= -0.2 + 0.02 and high < 0
    [slope] = [r for r in output["comparison"] if r["group"] == "0.2" and r["quantity"] == "c"]
    assert slope["difference_interval"][0] < 0 < slope["difference_interval"][1]  # same slope: no difference
    assert (workdir / "figs" / "code-by-replay-soft.png").stat().st_size > 0


def test_fit_by_an_unknown_column_is_one_line(workdir):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    query = synthetic_points(workdir)
    done = CliRunner().invoke(app, ["fit", "--query", str(query), "--by", "colour", "--law", "linear", "--no-store"])
    assert isinstance(done.exception, UserError) and "--by colour" in done.exception.message
