"""The laws: recovery of known parameters, status, bootstrap over runs, bad data, the CLI.

Points are generated from known parameters (the paper's Table 1 values on the paper's grid:
ranks 8..256, P = 2,498,560·r, N from 51 to 260), with and without noise. Bootstrap sizes are
small (B ≤ 50) to keep the file well under a minute and a half on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from forgetlab.errors import UserError
from forgetlab.laws.bootstrap import BootstrapOptions, bootstrap, sampling_frame
from forgetlab.laws.complete_fit import fit_points
from forgetlab.laws.fitting import FitOptions, fit, single_threaded_blas
from forgetlab.laws.forms import Design, Reference, get_law
from forgetlab.laws.forms.paper_joint import regauge
from forgetlab.laws.points import Points, points_for
from forgetlab.laws.predict import StoredLaw, predict, steps_to_forgetting
from forgetlab.laws.result import FitResult

TABLE_1 = {
    "OpenOrca": {
        "a_f": 3.88e5, "a_ft": 7.0e3, "b_f": 23.6418, "b_ft": 72.9186, "c_ft": 0.0020, "c_f_ft": 1.7334, "s_ft": 0.6126,
        "s_f_ft": 2.0481, "alpha_f": 0.0351, "alpha_ft": 0.0424, "beta_f": 0.1468, "beta_ft": 0.1219, "rho": 7.6885,
    },
    "News": {
        "a_f": 1.1e4, "a_ft": 2.2e4, "b_f": 97.8466, "b_ft": 54.8678, "c_ft": 0.0028, "c_f_ft": 1.0615, "s_ft": 1.9253,
        "s_f_ft": 3.1285, "alpha_f": 0.0458, "alpha_ft": 0.0383, "beta_f": 0.1044, "beta_ft": 0.1161, "rho": 7.5996,
    },
}  # fmt: skip
RANKS = (8, 16, 32, 64, 128, 256)
P_PER_RANK = 2_498_560
NO_BOOTSTRAP = BootstrapOptions(B=1)


def grid(seeds: int = 1, step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """run ids, ranks and N of the paper's grid (N from 51 to 260)."""
    rows = [(f"r{r}-s{s}", r, n) for r in RANKS for s in range(seeds) for n in range(51, 261, step)]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows], float), np.array([r[2] for r in rows], float)


def paper_points(
    params: dict, seeds: int = 1, step: int = 1, noise: float = 0.0, seed: int = 0
) -> tuple[Points, Reference]:
    run, rank, N = grid(seeds, step)
    P = P_PER_RANK * rank
    law = get_law("paper-joint")
    reference = Reference.of(P, N)
    y = law.predict(law.from_public(params, reference), Design.build(P, N, None, reference))
    y = y + np.random.default_rng(seed).normal(0.0, noise, y.shape) if noise else y
    return Points("openorca", "soft", run, rank, P, N, y[0], y[1]), reference


def additive_points(E, A, B, alpha, beta, noise=0.0, seeds=2, step=5) -> Points:
    run, rank, N = grid(seeds, step)
    P = P_PER_RANK * rank
    L_f = E - A * P**-alpha - B * N**-beta
    if noise:
        L_f = L_f + np.random.default_rng(3).normal(0.0, noise, L_f.shape)
    return Points("news", "soft", run, rank, P, N, np.full(L_f.shape, np.nan), L_f)


def relative_error(a: dict, b: dict) -> dict:
    return {k: abs(a[k] / b[k] - 1) for k in b}


# --- recovery ---------------------------------------------------------------------------------


def test_linear_law_recovers_c_and_s_exactly_without_noise():
    run, rank, N = grid(seeds=2, step=10)
    L_ft = 0.65 + 0.12 * np.exp(-(N - 51) / 80) + 0.01 * np.log2(rank / 8) / 5
    points = Points("openorca", "soft", run, rank, P_PER_RANK * rank, N, L_ft, -1.7334 * L_ft + 2.0481)
    result = fit_points(get_law("linear"), points, bootstrap_options=BootstrapOptions(B=20), run_validation=False)
    assert result.status == "converged"
    assert result.params["c"] == pytest.approx(1.7334, rel=1e-9)
    assert result.params["s"] == pytest.approx(2.0481, rel=1e-9)
    assert result.stats["L_f"]["r2"] == pytest.approx(1.0, abs=1e-12)
    assert result.identifiability["identified"]


@pytest.mark.parametrize("name", ["OpenOrca", "News"])
def test_paper_joint_recovers_table_1_without_noise(name):
    """All 13 parameters, after moving the fit to the paper's gauge (2 exact symmetries)."""
    truth = TABLE_1[name]
    points, reference = paper_points(truth)
    law = get_law("paper-joint")
    design = Design.build(points.P, points.N, None, reference)
    y = points.targets(law)
    with single_threaded_blas():
        optimum = fit(law, design, y)
    assert optimum.status == "converged"
    fitted = regauge(law.to_public(optimum.theta, reference), c_ft=truth["c_ft"], c_f_ft=truth["c_f_ft"])
    assert max(relative_error(fitted, truth).values()) < 1e-4
    assert np.abs(law.predict(optimum.theta, design) - y).max() < 1e-9
    # the reconstruction reproduces the paper's quoted end points (paper notes)
    ends = law.predict(
        optimum.theta, Design.build(np.array([8.0, 256.0]) * P_PER_RANK, np.array([50.0, 260.0]), None, reference)
    )
    expected = {"OpenOrca": [[0.767, 0.652], [0.711, 0.918]], "News": [[2.150, 1.989], [0.845, 1.017]]}[name]
    assert ends == pytest.approx(np.array(expected), abs=6e-4)


def test_paper_joint_with_noise_truth_inside_intervals_and_predictions_tight():
    """With noise the exponents trade off (small α, large ρ): the fit says so, the truth lies
    inside the run-bootstrap intervals, and predictions stay close to the generating law."""
    truth = TABLE_1["OpenOrca"]
    points, reference = paper_points(truth, seeds=2, step=10, noise=0.002, seed=1)
    law = get_law("paper-joint")
    result = fit_points(law, points, bootstrap_options=BootstrapOptions(B=50, seed=0, level=0.99), run_validation=False)
    assert result.status == "converged"
    assert result.bootstrap["succeeded"] + result.bootstrap["failed"] == 50
    # truth expressed in the fit's gauge (same reference point) vs the intervals
    truth_here = law.to_public(law.from_public(truth, reference), reference)
    outside = [n for n, (lo, hi) in result.intervals.items() if not lo <= truth_here[n] <= hi]
    assert outside == []
    internal_truth = law.from_public(truth, reference)
    low, high = np.array(result.internal["interval_low"]), np.array(result.internal["interval_high"])
    assert np.all((low <= internal_truth) & (internal_truth <= high))
    # non-identifiability is detected and reported, not hidden
    assert result.identifiability["identified"] is False
    assert {"a_f", "a_ft"} <= set(result.identifiability["weak_parameters"])
    assert result.identifiability["gauge"]
    # predictions: tight, on the grid and at a new rank
    stored = StoredLaw.of(FitResult.from_dict(json.loads(result.to_json())))
    design = Design.build(points.P, points.N, None, reference)
    gap = np.abs(law.predict(stored.estimate, design) - law.predict(internal_truth, design)).max()
    assert gap < 0.0015
    at_48 = predict(stored, P=48 * P_PER_RANK, N=150.0)
    true_48 = law.predict(
        internal_truth, Design.build(np.array([48.0 * P_PER_RANK]), np.array([150.0]), None, reference)
    )[:, 0]
    for row, target in enumerate(law.targets):
        assert at_48[target]["estimate"] == pytest.approx(true_48[row], abs=1e-3)
        assert at_48[target]["low"] - 1e-3 <= true_48[row] <= at_48[target]["high"] + 1e-3


def test_power_additive_recovers_parameters_and_predicts():
    truth = {"E": 1.1, "A": 3.5, "B": 2.3, "alpha": 0.17, "beta": 0.6}
    points = additive_points(**truth)
    result = fit_points(
        get_law("power-additive"), points, bootstrap_options=BootstrapOptions(B=10), run_validation=False
    )
    assert result.status == "converged"
    assert max(relative_error(result.params, truth).values()) < 1e-6
    stored = StoredLaw.of(result)
    prediction = predict(stored, P=48 * P_PER_RANK, N=137.0)["L_f"]
    expected = truth["E"] - truth["A"] * (48 * P_PER_RANK) ** -truth["alpha"] - truth["B"] * 137.0 ** -truth["beta"]
    assert prediction["estimate"] == pytest.approx(expected, rel=1e-8)
    assert prediction["low"] == pytest.approx(expected, rel=1e-6) and prediction["high"] == pytest.approx(
        expected, rel=1e-6
    )


def test_power_additive_with_noise_is_identified_and_validated():
    truth = {"E": 1.1, "A": 3.5, "B": 2.3, "alpha": 0.17, "beta": 0.6}
    points = additive_points(**truth, noise=0.002, seeds=2, step=10)
    result = fit_points(get_law("power-additive"), points, bootstrap_options=BootstrapOptions(B=40, level=0.99))
    assert all(lo <= truth[n] <= hi for n, (lo, hi) in result.intervals.items())
    assert result.identifiability["identified"]
    loro = result.validation["leave_one_rank_out"]
    assert set(loro["folds"]) == {str(r) for r in RANKS}
    assert loro["L_f"]["rmse"] < 0.004  # noise is 0.002
    assert result.validation["small_to_largest"]["held_out_rank"] == "256"


# --- status, bootstrap ------------------------------------------------------------------------


def test_fit_that_wants_past_a_bound_is_flagged_on_bound():
    """Forgetting that *falls* with P: power-additive's A ≥ 0 bound stops the fit there."""
    run, rank, N = grid(step=10)
    P = P_PER_RANK * rank
    L_f = 1.0 + 0.3 * (P / 1e8) ** -0.2 - 0.4 * (N / 100) ** -0.5
    points = Points("news", "soft", run, rank, P, N, None, L_f)
    result = fit_points(get_law("power-additive"), points, bootstrap_options=NO_BOOTSTRAP, run_validation=False)
    assert result.status == "on_bound"
    assert "slope_P" in result.on_bound  # the slope of L_f in ln P at the reference point
    assert result.params["A"] == pytest.approx(0.0, abs=1e-9)


def test_bootstrap_resamples_seeds_within_ranks_not_points():
    """Stratified by rank, n−1 of a rank's n seeds drawn whole: every rank in every replicate (the
    scheme for seeds nested in ranks; crossed seeds are drawn whole: test_statistics.py)."""
    run, rank, N = grid(seeds=3, step=20)
    seed = np.array([float(r.split("-s")[1]) for r in run])
    frame = sampling_frame(rank, run, seed, unit="within rank")
    assert frame.labels == tuple(f"{r:g}" for r in RANKS) and all(len(units) == 3 for units in frame.strata)
    sizes = pd.Series(run).value_counts()
    rng = np.random.default_rng(0)
    for _ in range(20):
        index = frame.resample(rng)
        drawn = pd.Series(run[index]).value_counts()
        assert all(count % sizes[r] == 0 for r, count in drawn.items())  # whole runs only
        per_rank = pd.Series(rank[index]).value_counts() / sizes.iloc[0]
        assert (per_rank == 2).all() and len(per_rank) == len(RANKS)  # 3 − 1 units of every rank
    # and the refits see exactly such replicates
    points, reference = paper_points(TABLE_1["News"], seeds=2, step=20)
    law = get_law("paper-joint")
    design = Design.build(points.P, points.N, None, reference)
    seen = []

    def spy(index):
        seen.append(index)
        return None

    theta = law.from_public(TABLE_1["News"], reference)
    frame = sampling_frame(points.rank, points.run_id)
    with single_threaded_blas():
        result = bootstrap(law, design, points.targets(law), frame, theta, FitOptions(), BootstrapOptions(B=5), spy)
    assert len(seen) == 5 and result.n_ok + result.n_failed == 5
    for index in seen:
        counts = pd.Series(points.run_id[index]).value_counts()
        assert all(c % (len(points) // 12) == 0 for c in counts)
        assert len(counts) == len(RANKS)  # one of the two seeds of each rank


def test_one_run_per_rank_gives_no_interval_and_says_why():
    """The newcomer's single r4 run printed `c 1.363 [1.363, 1.363]` and "every parameter is
    determined by the data": with one run per rank nothing measures run-to-run variation."""
    truth = {"E": 1.1, "A": 3.5, "B": 2.3, "alpha": 0.17, "beta": 0.6}
    points = additive_points(**truth, seeds=1, step=20)
    result = fit_points(
        get_law("power-additive"), points, bootstrap_options=BootstrapOptions(B=30), run_validation=False
    )
    assert all(interval == [None, None] for interval in result.intervals.values())
    assert "fewer than two independent runs per rank" in result.bootstrap["withheld"]
    assert result.bootstrap["succeeded"] == 0
    # Noise-free points of a five-parameter law determine it (issue 28: one run read "NOT identified");
    # what one run per rank cannot tell is said instead: no interval, how the parameters vary is unknown.
    assert result.identifiability["identified"]
    assert "every parameter is determined by the data" not in result.identifiability["note"]
    assert (
        "determined by these points" in result.identifiability["note"]
        and "unknown (no interval)" in result.identifiability["note"]
    )
    assert result.identifiability["unknown"] == result.bootstrap["withheld"]


# --- bad data ---------------------------------------------------------------------------------


def frame(**changes) -> pd.DataFrame:
    run, rank, N = grid(step=30)
    data = pd.DataFrame({"dataset": "news", "run_id": run, "rank": rank, "P": P_PER_RANK * rank, "N": N})
    data["L_ft"] = 2.0 - 0.05 * np.log(data["N"]) - 0.01 * np.log(data["rank"])
    data["L_f_soft"] = 3.1 - 1.06 * data["L_ft"]
    data["L_f_hard"] = data["L_f_soft"] + 0.5
    for key, value in changes.items():
        data[key] = value
    return data


def test_variant_selects_its_column():
    data = frame()
    assert np.array_equal(points_for(data, get_law("linear"), "hard", "news").L_f, data["L_f_hard"].to_numpy())
    with pytest.raises(UserError, match="lacks L_f_kl"):
        points_for(data, get_law("linear"), "kl", "news")
    with pytest.raises(UserError, match="unknown forgetting variant"):
        points_for(data, get_law("linear"), "medium", "news")


@pytest.mark.parametrize(
    "data, law, message",
    [
        (frame().head(5), "paper-joint", "5 points, but law paper-joint has 11 parameters"),
        (frame(P=1e7), "power-additive", "a single P"),
        (frame(rank=8.0, P=2e7), "paper-joint", "a single P"),
        (frame(L_f_soft=0.7), "linear", "L_f_soft is constant"),
        (frame(L_ft=1.5), "linear", "L_ft is constant"),
        (frame().assign(L_f_soft=lambda d: d["L_f_soft"] - 2.5), "linear", "must be positive"),
        (
            frame().assign(L_f_soft=lambda d: d["L_f_soft"].where(d["N"] < 200)),
            "linear",
            r"have a missing .* IS NOT NULL",
        ),
        (frame().drop(columns=["N"]), "power-additive", "lacks N"),
    ],
)
def test_bad_data_is_refused_in_one_line(data, law, message):
    with pytest.raises(UserError, match=message) as raised:
        points_for(data, get_law(law), "soft", "news")
    assert "\n" not in raised.value.message


def test_nan_error_names_the_count():
    data = frame().assign(L_f_soft=lambda d: d["L_f_soft"].where(d["N"] < 200))
    with pytest.raises(UserError, match=r"12 of 42 points"):
        points_for(data, get_law("linear"), "soft", "news")


def test_unknown_law_is_refused():
    with pytest.raises(UserError, match="unknown law 'cubic'"):
        get_law("cubic")


# --- the command line -------------------------------------------------------------------------


def test_cli_fit_from_csv_then_predict(workdir):
    import duckdb
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from forgetlab.cli import app

    points, reference = paper_points(TABLE_1["OpenOrca"], seeds=2, step=21, noise=0.002, seed=2)
    pd.DataFrame(
        {"dataset": points.dataset, "run_id": points.run_id, "rank": points.rank, "P": points.P, "N": points.N,
         "L_ft": points.L_ft, "L_f_hard": points.L_f, "L_f_soft": points.L_f + 2.0}
    ).to_csv(workdir / "points.csv", index=False)  # fmt: skip
    (workdir / "points.sql").write_text(
        "-- my points\n-- param: min_step = 50\nSELECT * FROM read_csv('points.csv') WHERE N > $min_step\n"
    )
    runner = CliRunner()
    done = runner.invoke(app, ["fit", "--query", "points.sql", "-B", "20", "--json", "fits.json", "--figures", "figs"])
    assert done.exit_code == 0, done.output
    assert "paper-joint" in done.output and "95% interval" in done.output and "laws compared" in done.output

    fits = json.loads((workdir / "fits.json").read_text())["fits"]
    assert [f["law"] for f in fits] == [
        "linear",
        "linear-rank",
        "linear-rank-steps",
        "log-steps",
        "paper-joint",
        "power-additive",
        "power-steps",
    ]
    joint = next(f for f in fits if f["law"] == "paper-joint")
    assert set(joint["params"]) == set(TABLE_1["OpenOrca"])
    assert joint["spec"]["query"]["params"] == {"min_step": 50} and "read_csv" in joint["spec"]["query"]["sql"]
    assert joint["spec"]["huber_delta"] == 1e-3 and joint["bootstrap"]["unit"] == "run within rank"  # no seed column
    assert joint["variant"] == "hard"
    assert len(joint["internal"]["draws"]) == joint["bootstrap"]["succeeded"] > 0
    assert {p.name for p in (workdir / "figs" / "openorca-paper-joint-hard").glob("*.png")} == {
        "forgetting_vs_ft.png", "vs_steps.png", "vs_P.png", "predicted_vs_observed.png"
    }  # fmt: skip

    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(joint["fit_id"])
    assert run.data.tags["forgetlab.kind"] == "fit" and run.data.tags["forgetlab.law"] == "paper-joint"
    assert run.data.params["huber_delta"] == "0.001" and "L_f.r2" in run.data.metrics
    assert client.get_experiment(run.info.experiment_id).name == "forgetlab-fits"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "figures")
    }
    assert {"fit.json", "query.sql", "figures/vs_steps.png"} <= artifacts

    with duckdb.connect(str(workdir / "mlruns" / "forgetlab.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT fit_id, law, dataset, status, n_points, n_runs FROM fits ORDER BY law"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(f["fit_id"], f["law"]) for f in fits]
    assert rows[4][4:] == (len(points), 12)

    shown = runner.invoke(
        app, ["predict", "--fit", joint["fit_id"], "--rank", "128", "--steps", "200", "--json", "p.json"]
    )
    assert shown.exit_code == 0, shown.output
    predicted = json.loads((workdir / "p.json").read_text())
    assert predicted["inputs"]["P"] == 128 * P_PER_RANK
    expected = get_law("paper-joint").predict(np.array(joint["internal"]["estimate"]), Design.build(
        np.array([128.0 * P_PER_RANK]), np.array([200.0]), None, Reference(**joint["reference"])))[:, 0]  # fmt: skip
    assert predicted["predictions"]["L_f"]["estimate"] == pytest.approx(expected[1], rel=1e-12)

    steps = runner.invoke(app, ["predict", "--fit", joint["fit_id"], "--rank", "64", "--max-forgetting", "0.9"])
    assert steps.exit_code == 0 and "L_f passes 0.9 after N ≈" in steps.output

    far = runner.invoke(app, ["predict", "--fit", joint["fit_id"], "--rank", "64", "--steps", "100000"])
    assert isinstance(far.exception, UserError) and "--extrapolate" in far.exception.message
    allowed = runner.invoke(
        app, ["predict", "--fit", joint["fit_id"], "--rank", "64", "--steps", "100000", "--extrapolate"]
    )
    assert allowed.exit_code == 0


def test_cli_fit_jobs_spread_fits_over_processes_with_the_same_results(workdir):
    """`fit --jobs 2` runs the same engine as `report --jobs`: same fits, same order, same numbers."""
    from typer.testing import CliRunner

    from forgetlab.cli import app

    points, _ = paper_points(TABLE_1["OpenOrca"], seeds=2, step=41, noise=0.002, seed=3)
    pd.DataFrame(
        {"dataset": points.dataset, "run_id": points.run_id, "rank": points.rank, "P": points.P, "N": points.N,
         "L_ft": points.L_ft, "L_f_hard": points.L_f}
    ).to_csv(workdir / "points.csv", index=False)  # fmt: skip
    (workdir / "points.sql").write_text("SELECT * FROM read_csv('points.csv') WHERE N > 50\n")
    fitted = {}
    for jobs in ("1", "2"):
        done = CliRunner().invoke(app, ["fit", "--query", "points.sql", "--law", "linear", "-B", "10", "--no-store", "--no-validation",
                                        "--json", f"fits-{jobs}.json", "--jobs", jobs])  # fmt: skip
        assert done.exit_code == 0, done.output
        fits = json.loads((workdir / f"fits-{jobs}.json").read_text())["fits"]
        fitted[jobs] = [(f["law"], f["params"], f["intervals"]) for f in fits]
        if jobs == "2":
            assert "[1/1] fitted" not in done.output  # one law: nothing to spread, fitted here
    assert fitted["1"] == fitted["2"] and [law for law, _, _ in fitted["1"]] == ["linear"]
    every = {}
    for jobs in ("1", "2"):
        done = CliRunner().invoke(app, ["fit", "--query", "points.sql", "-B", "10", "--no-store", "--no-validation",
                                        "--json", f"all-{jobs}.json", "--jobs", jobs])  # fmt: skip
        assert done.exit_code == 0, done.output
        fits = json.loads((workdir / f"all-{jobs}.json").read_text())["fits"]
        every[jobs] = [(f["law"], f["params"], f["intervals"]) for f in fits]
        if jobs == "2":
            assert f"[{len(fits)}/{len(fits)}] fitted" in done.output
    assert every["1"] == every["2"] and len(every["1"]) == 7


def test_cli_bad_data_is_one_line_and_exit_code_2(workdir):
    pd.DataFrame({"dataset": "x", "run_id": ["a", "b", "c"], "rank": [8, 8, 8], "P": 2e7, "N": [60, 70, 80],
                  "L_ft": [1.0, 0.9, 0.8], "L_f_hard": [0.5, 0.6, 0.7]}).to_csv(workdir / "few.csv", index=False)  # fmt: skip
    (workdir / "few.sql").write_text("SELECT * FROM read_csv('few.csv')")
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", "fit", "--query", "few.sql", "--law", "paper-joint"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "3 points, but law paper-joint has 11 parameters" in done.stderr


def test_predicted_steps_to_forgetting_match_the_law():
    truth = TABLE_1["News"]
    points, reference = paper_points(truth, step=10)
    result = fit_points(get_law("paper-joint"), points, bootstrap_options=BootstrapOptions(B=5), run_validation=False)
    stored = StoredLaw.of(result)
    found = steps_to_forgetting(stored, P=64 * P_PER_RANK, threshold=0.95, extrapolate=False)
    at = predict(stored, P=64 * P_PER_RANK, N=found["steps"])["L_f"]["estimate"]
    assert at == pytest.approx(0.95, abs=2e-5)


def test_forms_package_registers_every_form_without_an_import_cycle():
    """Any form module can be imported first (each imports only forms.base); the CLI's default
    variant is the library's (the CLI keeps its own copy so that it starts without numpy)."""
    for first in ("linear", "linear_terms", "paper_joint", "power_additive", "unsaturated"):
        done = subprocess.run(
            [sys.executable, "-c", f"import forgetlab.laws.forms.{first}; from forgetlab.laws.forms import law_names; print(len(law_names()))"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == "7", done.stderr
    from forgetlab.commands.laws import DEFAULT_VARIANT as cli_default
    from forgetlab.laws.forms import DEFAULT_VARIANT

    assert cli_default == DEFAULT_VARIANT == "hard"
