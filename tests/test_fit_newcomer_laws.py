"""What a newcomer met with `forgetlab fit` and `predict` (issue 17), each reproduced on a store.

The store holds fake but well-formed runs (params and metric histories as forgetlab logs them),
written with MLflow's client into the default `mlruns/mlflow.db`, so the CLI finds it as a user's
would: runs of the default base at three ranks × two seeds, then runs of the tiny base logged
*after* an export, and smoke-sized runs (N ≤ 10) under their own data set label.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from forgetlab.errors import UserError

T0 = 1_700_000_000_000


def _client():
    from mlflow.tracking import MlflowClient

    from forgetlab.locations import default_tracking_uri

    return MlflowClient(default_tracking_uri())


def log_run(
    client, experiment_id: str, dataset: str, model: str, rank: int, seed: int, steps: list[int], lr: str = "3e-4"
) -> str:
    from mlflow.entities import Metric, Param

    run = client.create_run(
        experiment_id,
        run_name=f"r{rank}-{dataset}-s{seed}",
        tags={"forgetlab.kind": "run", "forgetlab.dataset": dataset},
    )
    params = {"lora.rank": rank, "P": 14_592 * rank, "data.name": dataset, "seed": seed, "train.lr": lr, "train.steps": max(steps),
              "train.context_length": 128, "model.name": model, "fingerprint.base": model + "-fp"}  # fmt: skip
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    rng = np.random.default_rng(rank * 10 + seed)
    offset = rng.normal(0, 0.01)
    metrics = []
    for step in steps:
        # A lower learning rate reaches a fine-tuning loss later (in steps), and forgets more per
        # e-fold of steps (0.05 nats) at equal fine-tuning loss.
        progress = step * float(lr) / 3e-4
        ft = 4.5 - 0.06 * np.log2(rank) + 0.3 * np.exp(-progress / 100) + offset
        hard = -1.2 * ft + 8.0 + 0.01 * np.log2(rank) + 0.05 * np.log1p(step) + rng.normal(0, 0.003)
        values = {
            "ft_loss": ft,
            "forget_hard": hard,
            "forget_soft": hard + 1.5,
            "forget_kl": hard - 2.0,
            "forget_data": hard + 1.7,
        }
        metrics += [Metric(key, float(value), T0 + step, step) for key, value in values.items()]
    client.log_batch(run.info.run_id, metrics=metrics)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture
def study(workdir):
    client = _client()
    experiment = client.create_experiment("forgetlab")
    for rank in (1, 4, 16):
        for seed in (0, 1):
            log_run(client, experiment, "code", "embedded", rank, seed, list(range(0, 301, 30)))
    return client, experiment


def fit(*args: str):
    from forgetlab.cli import app

    return CliRunner().invoke(app, ["fit", "--no-store", "-B", "20", *args])


def test_fit_exports_first_and_refuses_to_pool_two_base_models(study):
    client, experiment = study
    from forgetlab.warehouse import export_warehouse

    export_warehouse()
    for rank in (1, 4):  # logged after the export, as a sweep right before `fit` would
        log_run(client, experiment, "code", "embedded-tiny", rank, 0, list(range(0, 301, 30)))
    done = fit("--law", "linear")
    assert isinstance(done.exception, UserError), done.output
    assert "exported 8 runs (2 new" in done.output  # the fit saw the new runs: it exported first
    message = done.exception.message
    assert "\n" not in message and "model = embedded, embedded-tiny" in message and "--param model=embedded" in message
    kept = fit("--law", "linear", "--param", "model=embedded")
    assert kept.exit_code == 0, kept.output
    assert "6 runs" in kept.output


def test_learning_rates_pool_only_in_a_law_with_terms_for_them(study):
    """An arm at another learning rate (and step budget) reaches each L_ft at other N: pooled into a
    line in L_ft alone, the runs are refused, naming the law that can pool them; linear-rank-steps,
    with terms in L_ft and N, pools them, says so, records what it pooled and finds the N term."""
    import json
    from pathlib import Path

    client, experiment = study
    for rank in (1, 4, 16):
        for seed in (0, 1):
            log_run(client, experiment, "code", "embedded", rank, seed, list(range(0, 901, 30)), lr="1e-4")
    refused = fit("--law", "linear")
    assert isinstance(refused.exception, UserError), refused.output
    message = refused.exception.message
    assert "\n" not in message and "lr = 0.0001, 0.0003" in message and "--law linear-rank-steps" in message
    pooled = fit("--law", "linear-rank-steps", "--json", "pooled.json")
    assert pooled.exit_code == 0, pooled.output
    assert (
        "pooling runs of lr = 0.0001, 0.0003 and steps = 300, 900 (linear-rank-steps: it has terms in" in pooled.output
    )
    [result] = json.loads(Path("pooled.json").read_text())["fits"]
    assert result["extra"]["pooled"] == {"lr": ["0.0001", "0.0003"], "steps": ["300", "900"]}
    assert result["data"]["n_runs"] == 12 and "lr" not in result["extra"]["comparability"]
    assert result["params"]["e"] == pytest.approx(0.05, abs=0.01)
    assert result["params"]["c"] == pytest.approx(1.2, abs=0.05)
    # Each arm apart, compared at equal L_ft and the reference rank: linear-rank has no N term, so the arms
    # differ by the N effect at that L_ft (the lr 1e-4 arm is there at 3x the steps).
    apart = fit("--law", "linear-rank", "--by", "lr", "--at-ft-loss", "4.45", "--at-rank", "4", "--json", "apart.json")
    assert apart.exit_code == 0, apart.output
    rows = json.loads(Path("apart.json").read_text())["comparison"]
    [row] = [r for r in rows if r["quantity"] == "L_f at L_ft=4.45, rank 4" and r["group"] == "0.0003"]
    assert row["estimate"] is not None and row["difference"] < 0 and row["baseline"] == "0.0001"


def test_smoke_sized_runs_name_the_min_step_cut_not_a_shortage_of_ranks(study):
    client, experiment = study
    for rank in (1, 4, 16):
        log_run(client, experiment, "smoke", "embedded", rank, 0, [0, 5, 10])
    done = fit("--dataset", "smoke")
    assert isinstance(done.exception, UserError)
    message = done.exception.message
    assert "min_step=50" in message and "3 runs whose steps end at N=10" in message and "--param min_step=0" in message
    assert "distinct values of P" not in message


def test_min_step_minus_one_leaks_no_warnings_and_says_why_laws_are_skipped(study):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = fit("--param", "min_step=-1", "--no-validation", "-B", "5")
    assert done.exit_code == 0, done.output
    leaked = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert leaked == [] and "Warning" not in done.output
    assert "N has values ≤ 0" in done.output  # step 0 (the base) cannot enter a law in ln N: said, not hidden


def test_one_run_says_no_interval_and_why_in_the_singular(study):
    client, experiment = study
    log_run(client, experiment, "solo", "embedded", 4, 0, list(range(0, 301, 30)))
    done = fit("--law", "linear", "--dataset", "solo")
    assert done.exit_code == 0, done.output
    assert "1 run," in done.output and "1 runs" not in done.output
    assert "no interval" in done.output and "fewer than two independent runs per rank" in done.output
    assert "every parameter is determined by the data" not in done.output


def test_a_line_through_one_runs_points_is_identified_and_says_what_one_run_cannot_tell(study):
    """A two-parameter line with R² 0.99 through one run's points read "parameters NOT identified": the data
    determine it; what one run cannot give is any interval across runs or seeds."""
    client, experiment = study
    log_run(client, experiment, "solo", "embedded", 4, 0, list(range(0, 301, 30)))
    done = fit("--law", "linear", "--dataset", "solo")
    assert done.exit_code == 0, done.output
    output = " ".join(done.output.split())  # rich wraps long lines
    assert (
        "NOT identified" not in output
        and "parameters identified: every parameter is determined by these points" in output
    )
    assert "how they vary across runs or seeds is unknown" in output


def test_predict_max_forgetting_with_the_default_variant_explains_a_threshold_below_the_data(study):
    import json

    from forgetlab.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["fit", "--law", "power-additive", "-B", "20", "--no-validation", "--json", "fits.json"])
    assert done.exit_code == 0, done.output
    fit_id = json.loads(open("fits.json").read())["fits"][0]["fit_id"]
    below = runner.invoke(app, ["predict", "--fit", fit_id, "--rank", "4", "--max-forgetting", "0.9"])
    assert below.exit_code == 0, below.output
    said = " ".join(below.output.split())  # rich wraps long lines
    assert "already" in said and "choose a threshold in or above" in said
    low, high = json.loads(open("fits.json").read())["fits"][0]["data"]["L_f_range"]
    within = runner.invoke(
        app, ["predict", "--fit", fit_id, "--rank", "4", "--max-forgetting", f"{(low + high) / 2:.4f}"]
    )
    assert within.exit_code == 0 and "after N ≈" in within.output


def test_numbers_never_print_minus_zero():
    from forgetlab.laws.text import fixed, interval, number, plural

    assert number(-0.0) == "0" and fixed(-0.00001, 4) == "0.0000" and fixed(-0.00001, 3, sign=True) == "0.000"
    assert interval(None, 1.0) == "no interval" and plural(1, "point") == "1 point" and plural(2, "run") == "2 runs"


def test_a_fit_records_the_base_model_and_settings_its_runs_share(study):
    import json

    done = fit("--law", "linear", "--no-validation", "--json", "fits.json")
    assert done.exit_code == 0, done.output
    [result] = json.loads(open("fits.json").read())["fits"]
    assert result["extra"]["comparability"] == {
        "model": "embedded", "base_fingerprint": "embedded-fp", "context_length": 128, "lr": 3e-4, "steps": 300,
    }  # fmt: skip


def readme_predict_example() -> list[str]:
    """The arguments of the README's `forgetlab predict` example (its commands table)."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [line] = [line for line in readme.splitlines() if line.startswith("| `forgetlab predict ")]
    return shlex.split(line.split("`")[1])[1:]


def test_readme_predict_example_works_on_a_default_fit_and_says_what_it_used(study):
    """On `forgetlab fit` (every law) the README's example failed ("pass --ft-loss": a newcomer took the
    first fit id, the linear law's); options a law does not use were ignored but echoed; a rank beyond
    the fitted ones passed without a word."""
    import json

    from forgetlab.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["fit", "-B", "20", "--no-validation", "--json", "fits.json"])
    assert done.exit_code == 0, done.output
    fits = {fit["law"]: fit for fit in json.loads(open("fits.json").read())["fits"]}

    example = runner.invoke(app, readme_predict_example())
    assert example.exit_code == 0, example.output
    said = " ".join(example.output.split())
    assert f"fit {fits['paper-joint']['fit_id']}" in said and "L_f" in said
    assert "rank 128 (P=1.868e+06) is 8x above the fitted ranks 1, 4, 16" in said and "an extrapolation" in said

    inside = runner.invoke(app, ["predict", "--fit", "paper-joint", "--rank", "4", "--steps", "200"])
    assert inside.exit_code == 0 and "extrapolation" not in inside.output, inside.output

    linear = fits["linear"]["fit_id"]
    refused = runner.invoke(app, ["predict", "--fit", linear, "--rank", "128", "--steps", "1000"])
    assert refused.exit_code != 0 and isinstance(refused.exception, UserError)
    message = refused.exception.message
    assert f"fit {linear} is law linear" in message and "pass --ft-loss" in message and "--fit paper-joint" in message

    low, high = fits["linear"]["data"]["L_ft_range"]
    middle = f"{(low + high) / 2:.4f}"
    ignored = runner.invoke(
        app,
        [
            "predict",
            "--fit",
            linear[:8] + "…",
            "--rank",
            "128",
            "--steps",
            "1000",
            "--ft-loss",
            middle,
            "--json",
            "p.json",
        ],
    )
    assert ignored.exit_code == 0, ignored.output
    said = " ".join(ignored.output.split())
    assert f"at L_ft={middle}" in said and "rank=" not in said and "N=" not in said
    assert "law linear predicts from L_ft only: --rank and --steps are not used" in said and "extrapolation" not in said
    assert json.loads(open("p.json").read())["inputs"] == {"rank": None, "P": None, "N": None, "L_ft": float(middle)}


def test_a_prediction_without_an_interval_says_why_and_claims_none(study):
    """With one run per rank no interval can be given; the prediction said "intervals include that"."""
    client, experiment = study
    log_run(client, experiment, "solo", "embedded", 4, 0, list(range(0, 301, 30)))
    from forgetlab.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["fit", "--law", "linear", "--dataset", "solo", "-B", "20"]).exit_code == 0
    shown = runner.invoke(app, ["predict", "--fit", "linear", "--dataset", "solo", "--ft-loss", "4.4"])
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert "no interval: rank 4 has a single run" in said and "intervals include that" not in said


def test_a_law_name_for_fit_refuses_to_choose_between_data_sets(study):
    client, experiment = study
    log_run(client, experiment, "solo", "embedded", 4, 0, list(range(0, 301, 30)))
    from forgetlab.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["fit", "--law", "linear", "-B", "5", "--no-validation"]).exit_code == 0
    done = runner.invoke(app, ["predict", "--fit", "linear", "--ft-loss", "4.4"])
    assert (
        isinstance(done.exception, UserError)
        and "law linear was fitted to data sets code, solo: pass --dataset" in done.exception.message
    )
