"""`forgetlab plot`: curves across runs from a query, averaged over seeds, to PNG and to MLflow."""

from __future__ import annotations

import sqlite3

from cli_helpers import invoke
from synthetic_store import RANKS, SEEDS, build_store


def test_plot_draws_one_line_per_rank_and_logs_the_figure(workdir, capsys, monkeypatch):
    database = build_store(workdir)
    code, out, err = invoke(["plot", "curves.sql", "--x", "step", "--y", "forget_hard", "--color", "rank",
                             "--out", "fig.png", "--log-to-mlflow"], capsys, monkeypatch)
    assert code == 0, err
    assert (workdir / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote fig.png: {len(RANKS)} lines (" in out
    assert all(f"rank={rank} ({len(SEEDS)} runs)" in out for rank in RANKS)  # mean over the seeds
    run_id = out.split("logged to MLflow run ")[1].split()[0]
    with sqlite3.connect(database) as connection:
        kind = connection.execute("select value from tags where run_uuid = ? and key = 'forgetlab.kind'", (run_id,)).fetchone()
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
