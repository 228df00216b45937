"""`forgetlab plot`: curves across runs from a query, averaged over seeds, to PNG and to MLflow."""

from __future__ import annotations

import sqlite3

from cli_helpers import invoke
from synthetic_store import RANKS, SEEDS, build_store


def test_plot_draws_one_line_per_rank_and_logs_the_figure(workdir, capsys, monkeypatch):
    database = build_store(workdir)
    code, out, err = invoke(
        [
            "plot",
            "curves.sql",
            "--x",
            "step",
            "--y",
            "forget_hard",
            "--color",
            "rank",
            "--out",
            "fig.png",
            "--log-to-mlflow",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert (workdir / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote fig.png: {len(RANKS)} lines (" in out
    assert all(f"rank={rank} ({len(SEEDS)} runs)" in out for rank in RANKS)  # mean over the seeds
    run_id = out.split("logged to MLflow run ")[1].split()[0]
    with sqlite3.connect(database) as connection:
        kind = connection.execute(
            "select value from tags where run_uuid = ? and key = 'forgetlab.kind'", (run_id,)
        ).fetchone()
        status = connection.execute("select status, artifact_uri from runs where run_uuid = ?", (run_id,)).fetchone()
    assert kind == ("plot",) and status[0] == "FINISHED"
    artifacts = workdir / "mlruns" / "artifacts"
    assert list(artifacts.rglob("figures/fig.png")) and list(artifacts.rglob("query/curves.sql"))


def test_plot_of_a_missing_column_names_the_columns(workdir, capsys, monkeypatch):
    build_store(workdir)
    code, out, err = invoke(["plot", "curves.sql", "--y", "forget_hardd", "--out", "fig.png"], capsys, monkeypatch)
    assert code == 2
    assert "the query has no column 'forget_hardd'; its columns:" in err and "forget_hard" in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err  # after the export line
    assert not (workdir / "fig.png").exists()


def _add_run(database, model: str, dataset: str, rank: int = 4) -> None:
    """One more finished run in the synthetic store, of another base model or data set."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from synthetic_store import STEPS, T0, curve

    client = MlflowClient(f"sqlite:///{database}")
    experiment_id = client.get_experiment_by_name("forgetlab").experiment_id
    run = client.create_run(
        experiment_id,
        run_name=f"{model}-r{rank}-{dataset}-s0",
        tags={"forgetlab.kind": "run", "forgetlab.dataset": dataset},
    )
    params = {
        "lora.rank": rank,
        "P": 14_592 * rank,
        "data.name": dataset,
        "seed": 0,
        "train.lr": "3e-4",
        "train.steps": STEPS[-1],
        "model.name": model,
        "fingerprint.base": f"{model}-fp",
    }
    client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric(key, value + 2.0, T0 + step * 1000, step)
            for step in STEPS
            for key, value in curve(rank, 0, step).items()
        ],
    )
    client.set_terminated(run.info.run_id, "FINISHED")


def test_plot_refuses_a_line_that_averages_runs_of_different_base_models(workdir, capsys, monkeypatch):
    # The README's plot printed "rank=4 (3 runs)": the embedded base, the tiny base and a user's model in one band.
    _add_run(build_store(workdir), "embedded-tiny", "kjv")
    code, out, err = invoke(
        ["plot", "curves.sql", "--y", "forget_hard", "--color", "rank", "--out", "fig.png"], capsys, monkeypatch
    )
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: curves.sql: the line rank=4 would average runs that cannot share a curve: model = embedded, embedded-tiny; "
        "draw them apart with --color model, or keep one with --param model=embedded"
    )
    assert not (workdir / "fig.png").exists()

    code, out, err = invoke(
        [
            "plot",
            "curves.sql",
            "--y",
            "forget_hard",
            "--color",
            "rank",
            "--param",
            "model=embedded-tiny",
            "--out",
            "fig.png",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert "wrote fig.png: 1 line (rank=4 (1 run))" in out
    code, out, err = invoke(
        ["plot", "curves.sql", "--y", "forget_hard", "--color", "model", "--out", "fig.png"], capsys, monkeypatch
    )
    assert code == 0, err
    assert f"model=embedded ({len(RANKS) * len(SEEDS)} runs), model=embedded-tiny (1 run)" in out


def test_plot_refuses_a_line_that_averages_runs_of_different_data_sets(workdir, capsys, monkeypatch):
    _add_run(build_store(workdir), "embedded", "code", rank=2)
    code, out, err = invoke(
        ["plot", "curves.sql", "--y", "forget_hard", "--color", "rank", "--out", "fig.png"], capsys, monkeypatch
    )
    assert code == 2 and "Traceback" not in err
    assert "the line rank=2 would average runs that cannot share a curve: dataset = code, kjv;" in err
    assert "--color dataset, or keep one with --param dataset=code" in err
    code, out, err = invoke(
        ["plot", "curves.sql", "--y", "forget_hard", "--color", "", "--param", "dataset=kjv", "--out", "fig.png"],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert f"wrote fig.png: 1 line ({len(RANKS) * len(SEEDS)} runs)" in out
