"""What MLflow's own readers (the UI, `MlflowClient`, `mlflow.load_table`) find of a run and of a fit.

A real tiny run: MLflow's context tags, the one-line description, the data as dataset inputs
(digest = fingerprint, role as context), the base's held-out loss as a metric, no "None" param,
the generation samples as a table. A fit on a sweep's runs: linked to their experiment, their
sweep (nested under it) and a digest of its points.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny import R4, REPO, TINY_BASE

RUN = [
    *TINY_BASE,
    "train.steps=4",
    "train.eval_every=2",
    "mitigation.replay=0.25",
    "probes.samples={prompts: ['Return the', 'Create a'], max_new_tokens: 4}",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, forgetlab_cache):
    """One real run on the tiny embedded base, with replay and the samples probe, in a fresh store."""
    import os

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    workdir = tmp_path_factory.mktemp("context")
    os.environ["FORGETLAB_CACHE"] = forgetlab_cache
    config = load_run_config(R4, [*RUN, f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}"])
    result = execute_run(config, progress=False)
    assert result.status == "FINISHED"
    return config, result


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_run_carries_mlflow_context_tags_and_a_description(tiny_run):
    _, result = tiny_run
    tags = mlflow_client(result.tracking_uri).get_run(result.run_id).data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head:  # from a checkout: the commit that ran, where MLflow's UI looks for it (and in forgetlab's tag, as before)
        assert tags["mlflow.source.git.commit"] == head == tags["forgetlab.source_commit"]
    assert tags["mlflow.note.content"] == "LoRA r4 on code, base embedded-tiny, 4 steps, seed 0, replay 0.25"
    assert tags["forgetlab.kind"] == "run" and tags["forgetlab.dataset"] == "code"


def test_data_are_dataset_inputs_whose_digests_are_the_fingerprints(tiny_run):
    _, result = tiny_run
    run = mlflow_client(result.tracking_uri).get_run(result.run_id)
    params = run.data.params
    inputs = {
        next(tag.value for tag in entry.tags if tag.key == "mlflow.data.context"): entry.dataset
        for entry in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation", "forgetting", "replay"}
    assert inputs["training"].digest == params["fingerprint.data"]
    assert inputs["validation"].digest == params["fingerprint.validation"] != params["fingerprint.data"]
    assert inputs["forgetting"].digest == params["fingerprint.forget_text"]
    assert inputs["replay"].digest == params["fingerprint.replay"]
    assert (inputs["training"].name, inputs["forgetting"].name, inputs["replay"].name) == ("code", "forget", "pretrain")
    assert {dataset.source_type for dataset in inputs.values()} == {"forgetlab_embedded"}
    assert json.loads(inputs["training"].source) == {"uri": "embedded:code", "split": "train"}
    assert json.loads(inputs["forgetting"].source)["uri"] == "embedded:forget"
    import mlflow.data

    from forgetlab.tracking.dataset_inputs import EmbeddedDatasetSource

    source = mlflow.data.get_source(inputs["replay"])  # MLflow reads the source back through its registry
    assert isinstance(source, EmbeddedDatasetSource) and source.uri == "embedded:pretrain"


def test_resuming_a_run_logs_its_inputs_once(tiny_run):
    """A resume goes through the same setup; the run keeps one input per data set."""
    from forgetlab.finetune.recipe import FineTuningRecipe

    config, result = tiny_run
    recipe = FineTuningRecipe(config, resume_run_id=result.run_id, progress=False)
    recipe.setup()
    recipe.tracker.finish("FINISHED")
    run = mlflow_client(result.tracking_uri).get_run(result.run_id)
    assert len(run.inputs.dataset_inputs) == 4


def test_measurements_are_metrics_and_no_param_is_none(tiny_run):
    from forgetlab.embedded import ensure_embedded_base

    _, result = tiny_run
    client = mlflow_client(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert "base.heldout_loss" not in run.data.params
    [heldout] = client.get_metric_history(result.run_id, "base.heldout_loss")
    assert heldout.step == 0 and heldout.value == pytest.approx(ensure_embedded_base("embedded-tiny").heldout_loss)
    assert math.isfinite(heldout.value)
    assert not [key for key, value in run.data.params.items() if value in ("None", "")]
    assert "data.hub_config" not in run.data.params  # None in the config: absent here, null in config.yaml
    with open(client.download_artifacts(result.run_id, "config.yaml")) as config_yaml:
        assert "hub_config: null" in config_yaml.read()  # what reproduces the run keeps every null


def test_generation_samples_are_an_mlflow_table(tiny_run, monkeypatch):
    import mlflow

    _, result = tiny_run
    # mlflow.load_table searches the current tracking URI and experiment: point both at the run's.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", result.tracking_uri)
    monkeypatch.setenv(
        "MLFLOW_EXPERIMENT_ID", mlflow_client(result.tracking_uri).get_run(result.run_id).info.experiment_id
    )
    table = mlflow.load_table("probes/samples.json", run_ids=[result.run_id], extra_columns=["run_id"])
    assert list(table["prompt"]) == ["Return the", "Create a"]
    assert set(table["step"]) == {4} and set(table["run_id"]) == {result.run_id}
    assert {"completion", "base_completion", "prompt_format", "max_new_tokens"} <= set(table.columns)
    assert all(isinstance(text, str) for text in [*table["completion"], *table["base_completion"]])


# -- fits ---------------------------------------------------------------------------------------


def sweep_in_store(uri: str, runs: int) -> tuple[str, list[str]]:
    """A sweep as `forgetlab sweep` leaves it in the store: a parent run and its points nested under it."""
    from forgetlab.tracking import RunTracker

    parent = RunTracker(uri, "my-study")
    parent_id = parent.start("s1", {"forgetlab.kind": "sweep", "forgetlab.sweep": "s1"})
    children = []
    for index in range(runs):
        child = RunTracker(uri, "my-study")
        children.append(
            child.start(
                f"r{index}", {"forgetlab.kind": "run", "forgetlab.sweep": "s1", "mlflow.parentRunId": parent_id}
            )
        )
        child.finish("FINISHED")
    parent.finish("FINISHED")
    return parent_id, children


def points_csv(path, run_ids: list[str]) -> pd.DataFrame:
    """Points of a linear law L_f = c + s·L_ft, one run per id, five steps each."""
    rows = []
    for number, run_id in enumerate(run_ids):
        for step in range(60, 110, 10):
            L_ft = 2.0 - 0.002 * step - 0.05 * number
            L_f = 3.0 - 0.4 * L_ft + 0.001 * ((step + number) % 3)
            rows.append({"dataset": "code", "run_id": run_id, "rank": 4 * (number + 1), "P": 1000 * (number + 1), "N": step,
                         "L_ft": L_ft, "L_f_soft": L_f, "L_f_hard": L_f + 0.2})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return frame


def fit(workdir, *extra: str) -> dict:
    from typer.testing import CliRunner

    from forgetlab.cli import app

    (workdir / "points.sql").write_text("-- the sweep's points\nSELECT * FROM read_csv('points.csv')\n")
    done = CliRunner().invoke(
        app, ["fit", "--query", "points.sql", "--law", "linear", "-B", "5", "--json", "fits.json", *extra]
    )
    assert done.exit_code == 0, done.output
    return json.loads((workdir / "fits.json").read_text())["fits"][0]


def test_a_fit_on_a_sweeps_runs_is_nested_under_it_and_names_its_data(workdir):
    from forgetlab.tracking.fits import points_digest

    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    parent_id, children = sweep_in_store(uri, runs=4)
    frame = points_csv(workdir / "points.csv", children)
    fitted = fit(workdir)

    client = mlflow_client(uri)
    run = client.get_run(fitted["fit_id"])
    tags, params = run.data.tags, run.data.params
    assert tags["forgetlab.kind"] == "fit"
    assert tags["forgetlab.source_experiments"] == "my-study"
    assert tags["forgetlab.sweep_parent"] == parent_id == tags["mlflow.parentRunId"]
    assert params["points.runs"] == params["points.runs_in_store"] == "4"
    assert tags["forgetlab.points_digest"] == params["points.digest"]
    assert len(params["points.digest"]) == 16 and "None" not in params.values()
    query = Path(client.download_artifacts(run.info.run_id, "query.sql")).read_text()
    assert "read_csv('points.csv')" in query
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
    # The fitted parameters and their bootstrap intervals, as metrics: fits compare side by side in the UI
    # (a bound the fit could not give, null in fit.json, is no metric).
    metrics = run.data.metrics
    assert set(fitted["params"]) == {"c", "s"}
    for name, value in fitted["params"].items():
        assert metrics[f"fit/{name}"] == pytest.approx(value)
        for bound, number in zip(("low", "high"), fitted["intervals"][name]):
            assert metrics.get(f"fit/{name}.{bound}") == (None if number is None else pytest.approx(number))
    # The sweep's run lists the fit: a tag, and a link to the fit's run page in its description.
    sweep_tags = client.get_run(parent_id).data.tags
    assert sweep_tags[f"forgetlab.fit.{run.info.run_name}"] == run.info.run_id
    assert (
        f"[{run.info.run_name}](#/experiments/{run.info.experiment_id}/runs/{run.info.run_id})"
        in sweep_tags["mlflow.note.content"]
    )
    # Another value of one point gives another digest; the same points, the same one.
    assert points_digest({"L_f": np.array([1.0, 2.0])}) == points_digest({"L_f": [1.0, 2.0]})
    assert points_digest({"L_f": np.array([1.0, 2.0])}) != points_digest({"L_f": np.array([1.0, 2.0000001])})
    assert len(frame) == 20


def test_a_fit_on_runs_of_no_single_sweep_is_not_nested(workdir):
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    _, children = sweep_in_store(uri, runs=3)
    points_csv(workdir / "points.csv", [*children, "0123456789abcdef0123456789abcdef"])  # one run from another store
    fitted = fit(workdir)
    run = mlflow_client(uri).get_run(fitted["fit_id"])
    assert "mlflow.parentRunId" not in run.data.tags and "forgetlab.sweep_parent" not in run.data.tags
    assert run.data.tags["forgetlab.source_experiments"] == "my-study"
    assert (run.data.params["points.runs"], run.data.params["points.runs_in_store"]) == ("4", "3")
