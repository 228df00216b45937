"""`forgetlab report DIR`: the results tables and figures regenerated from a points file alone."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from forgetlab.laws.simulation import StudyDesign, simulate_study


def study_points(model: str = "embedded") -> pd.DataFrame:
    """A tiny synthetic study in the points view's layout: 3 ranks × 2 seeds × 7 steps, one data set."""
    rng = np.random.default_rng(0)
    points = simulate_study(replace(StudyDesign(), ranks=(1, 4, 16), seeds=2, steps=tuple(range(0, 301, 50))), rng)
    frame = pd.DataFrame({
        "dataset": "code", "run_id": points.run_id, "rank": points.rank, "P": points.P, "N": points.N, "L_ft": points.L_ft,
        "L_f_hard": points.L_f, "L_f_soft": points.L_f + 2.0, "L_f_kl": points.L_f - 0.3, "seed": points.seed,
        "model": model, "lr": 3e-4, "steps": 300, "context_length": 128,
    })  # fmt: skip
    frame["L_f_data"] = frame["L_f_soft"] + 0.1
    return frame


def test_report_regenerates_tables_and_figures_from_the_points_file(workdir):
    from typer.testing import CliRunner

    from forgetlab.cli import app

    folder = workdir / "study"
    folder.mkdir()
    study_points().to_parquet(folder / "points.parquet")
    done = CliRunner().invoke(
        app, ["report", str(folder), "-B", "12", "--laws", "linear,linear-rank,log-steps,power-additive"]
    )
    assert done.exit_code == 0, done.output
    text = (folder / "results.md").read_text()
    assert (
        f"`forgetlab report {folder.as_posix()} -B 12 --seed 0 --min-step 50 --laws linear,linear-rank,log-steps,power-additive`"
        in text
    )
    for heading in (
        "## 1. The laws",
        "## 2. Does rank",
        "## 3. Sensitivity",
        "## 4. The end of training",
        "## Figures",
    ):
        assert heading in text
    fits = json.loads((folder / "fits.json").read_text())
    linear = next(f["fit"] for f in fits if (f["law"], f["variant"], f["min_step"]) == ("linear", "hard", 50))
    c, (low, high) = linear["params"]["c"], linear["intervals"]["c"]
    assert f"{c:.3f} [{low:.3f}, {high:.3f}]" in text  # the table is read from the fit, not typed
    assert abs(c - 1.2) < 0.1 and low < c < high  # near the simulated truth (coverage: test_statistics.py)
    assert "| code | hard | 100 |" in text and "| code | kl | 0 |" in text  # every cut, every variant
    assert "| code | 16 | 2 | 300 |" in text  # end of training: 2 seeds at rank 16, N = 300
    # Saturation in N: the simulated law levels off, so the last doubling adds less than the one before.
    saturation = text.split("## 5. Does forgetting keep rising in N?")[1].split("## Figures")[0]
    ratios = [float(line.split("|")[7].split("±")[0]) for line in saturation.splitlines() if line.startswith("| code | ")
              and line.count("|") == 8]  # fmt: skip
    assert len(ratios) == 3 and all(0 < ratio < 1 for ratio in ratios)
    additive = next(f["fit"] for f in fits if (f["law"], f["variant"], f["min_step"]) == ("power-additive", "hard", 50))
    beta, (low, high) = additive["params"]["beta"], additive["intervals"]["beta"]
    assert f"| code | {beta:.3f} [{low:.3f}, {high:.3f}] |" in saturation
    assert {p.name for p in (folder / "figures").glob("*.png")} >= {
        "code-linear-rank-hard-forgetting_vs_ft.png",
        "code-power-additive-hard-vs_steps.png",
    }
    assert "-0.000" not in text
    # What was resampled, and with how many seeds: 2 seeds are shown with a caution.
    assert (
        "- **Intervals of code**: over whole seeds (2 seeds, each left out in turn with every rank of it; t on 1 df)."
        in text
    )
    assert "Caution: only 2 seeds" in text
    assert "- **Base**: base embedded (6 runs)" in text
    # Where an interval of a term contains 0, the report says what it rules out, as nats over the ranks.
    rank = next(f["fit"] for f in fits if (f["law"], f["variant"], f["min_step"]) == ("linear-rank", "hard", 50))
    d, (low, high) = rank["params"]["d"], rank["intervals"]["d"]
    row = next(
        line for line in text.split("### 2b.")[1].splitlines() if line.startswith("| code | hard | linear-rank | d |")
    )
    if low <= 0 <= high:
        bound = max(-low, high)
        assert f"| \\|d\\| < {bound:.3f} | ranks 1–16 | < {bound * np.log(16):.3f} |" in row, row
    else:
        assert "| ranks 1–16 |" in row and ("d > " if d > 0 else "d < ") in row, row
    assert "(rank 16 − rank 1, end of training)" in row


def test_report_splits_runs_that_cannot_share_a_law_and_refuses_a_missing_file(workdir):
    """A long-N arm (another step budget) or another base model is its own set, never pooled."""
    from typer.testing import CliRunner

    from forgetlab.cli import app
    from forgetlab.errors import UserError

    folder = workdir / "mixed"
    folder.mkdir()
    long_arm = study_points().assign(run_id=lambda d: "long-" + d["run_id"], steps=3000)
    pd.concat([study_points(), long_arm]).to_parquet(folder / "points.parquet")
    done = CliRunner().invoke(app, ["report", str(folder), "-B", "5", "--laws", "linear"])
    assert done.exit_code == 0, done.output
    text = (folder / "results.md").read_text()
    assert "| code · steps=300 | linear |" in text and "| code · steps=3000 | linear |" in text
    fits = json.loads((folder / "fits.json").read_text())
    assert {f["fit"]["data"]["n_runs"] for f in fits if f["law"] == "linear" and f["min_step"] == 50} == {6}
    missing = CliRunner().invoke(app, ["report", str(workdir / "nothing"), "-B", "5"])
    assert isinstance(missing.exception, UserError) and "--format parquet --output" in missing.exception.message


def test_report_jobs_run_fits_in_parallel_with_the_same_results(workdir):
    """--jobs only spreads the fits over processes: every number in fits.json is unchanged."""
    from typer.testing import CliRunner

    from forgetlab.cli import app

    tables = {}
    for jobs in ("1", "2"):
        folder = workdir / f"jobs-{jobs}"
        folder.mkdir()
        study_points().to_parquet(folder / "points.parquet")
        done = CliRunner().invoke(app, ["report", str(folder), "-B", "8", "--laws", "linear,log-steps", "--jobs", jobs])
        assert done.exit_code == 0, done.output
        fits = json.loads((folder / "fits.json").read_text())
        tables[jobs] = [
            (f["law"], f["variant"], f["min_step"], f["fit"]["params"], f["fit"]["intervals"]) for f in fits
        ]
        if jobs == "2":
            assert f"[{len(fits)}/{len(fits)}] fitted" in done.output
    assert tables["1"] == tables["2"] and len(tables["1"]) == 3 * (2 + 3 * 4 - 1)


def test_tables_mark_an_estimate_the_optimiser_had_not_finished_with():
    from types import SimpleNamespace

    from forgetlab.laws.report_markdown import _param

    unfinished = SimpleNamespace(status="not_converged", params={"c": 0.6757}, intervals={"c": [None, None]})
    assert _param(unfinished, "c") == "0.676 (not converged)"
    finished = SimpleNamespace(status="converged", params={"c": 1.946}, intervals={"c": [1.902, 1.99]})
    assert _param(finished, "c") == "1.946 [1.902, 1.990]"


def test_report_names_the_base_and_never_sets_two_bases_side_by_side(workdir):
    """Forgetting is measured against the base itself: points or folders of two bases are refused in
    one line naming both fingerprints; a folder beside another base's says so in results.md."""
    from typer.testing import CliRunner

    from forgetlab.cli import app
    from forgetlab.errors import UserError

    study, other = "641ff1908922f5e3dbcf2bfba7c57aab", "774ab4072a736d2e0a40b26fd41c17aa"
    for name, base in (("study", study), ("long-n", other)):
        (workdir / name).mkdir()
        study_points().assign(base_fingerprint=base, run_id=lambda d: name + d["run_id"]).to_parquet(
            workdir / name / "points.parquet"
        )
    runner = CliRunner()
    side_by_side = runner.invoke(
        app, ["report", str(workdir / "study"), "--with", str(workdir / "long-n"), "-B", "5", "--laws", "linear"]
    )
    assert isinstance(side_by_side.exception, UserError), side_by_side.output
    message = side_by_side.exception.message
    assert "641ff1908922…" in message and "774ab4072a73…" in message and "rerun one arm on the other's base" in message
    assert "\n" not in message
    mixed = workdir / "mixed"
    mixed.mkdir()
    pd.concat([pd.read_parquet(workdir / n / "points.parquet") for n in ("study", "long-n")]).to_parquet(
        mixed / "points.parquet"
    )
    pooled = runner.invoke(app, ["report", str(mixed), "-B", "5", "--laws", "linear"])
    assert (
        isinstance(pooled.exception, UserError)
        and "mixes base models (641ff1908922… (6 runs), 774ab4072a73… (6 runs))" in pooled.exception.message
    )
    assert "-p base_fingerprint=<one>" in pooled.exception.message
    done = runner.invoke(app, ["report", str(workdir / "study"), "-B", "5", "--laws", "linear"])
    assert done.exit_code == 0, done.output
    text = (workdir / "study" / "results.md").read_text()
    assert f"- **Base**: base 641ff1908922… (6 runs): `{study}`." in text
    assert "- **Not comparable**: `../long-n` beside this folder ran on another base (774ab4072a73…)" in text
    assert "ran on another base" in " ".join(done.output.split())
