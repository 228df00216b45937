"""The statistics of the fits: interval coverage, the unit resampled, independent or paired
groups, the rank and steps terms, saturation tested by held-out later steps.

The coverage test simulates studies on a reduced version of the study's own design (its runs at
ranks 1, 4, 16, 64 × 4 seeds × 9 steps, with the study's L_ft; the truth `linear-rank` fitted to
its code points, the noise measured from that fit's residuals) with half the noise variance
common to every rank of a seed, as measured in the study, and fits each with the real pipeline
(the default: the jackknife over whole seeds, t on 3 df). 150 studies take a few seconds on one
core; a share then carries a binomial error of about ±1.8 points around 95%, so the band 0.90–1.0
for each of c, s and d fails only well below nominal (e.g. with the 21 df of seeds within ranks,
or a jackknife scaled wrongly). The median interval is also checked against the spread of the
estimates over the studies (its standard error should match it). The simulation is seeded, so the
test is deterministic. The full-size figures, every scheme beside the default, are in docs/laws.md
§6 (benchmarks/coverage.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgetlab.laws.bootstrap import BootstrapOptions, BootstrapResult, withheld
from forgetlab.laws.complete_fit import fit_points
from forgetlab.laws.coverage import coverage
from forgetlab.laws.forms import get_law
from forgetlab.laws.points import Points
from forgetlab.laws.simulation import StudyDesign, StudyTruth, simulate_study

STUDY = Path(__file__).resolve().parents[1] / "docs" / "results" / "study" / "points.parquet"


def small_study_truth(seed_share: float) -> StudyTruth:
    """`linear-rank` fitted to the study's code points at ranks 1, 4, 16, 64 and every third step, as the truth."""
    from forgetlab.laws.points import points_for

    frame = pd.read_parquet(STUDY)
    rows = frame[
        (frame["dataset"] == "code") & frame["rank"].isin([1, 4, 16, 64]) & frame["N"].isin(range(60, 301, 30))
    ]
    law = get_law("linear-rank")
    return StudyTruth.fitted(law, points_for(rows, law, "hard", "code")).with_seed_share(seed_share)


def test_intervals_over_whole_seeds_cover_the_truth_when_ranks_of_a_seed_share_their_noise():
    from forgetlab.laws.intervals import quantile

    truth = small_study_truth(0.5)
    tally = coverage(truth, studies=150, B=1, seed=3, methods=("seed",))["seed"]  # the jackknife ignores B
    assert tally.withheld == 0
    found = {name: tally.coverage(name) for name in ("c", "s", "d")}
    assert all(0.90 <= share <= 1.0 for share in found.values()), found  # measured: 0.947 (c, s), 0.953 (d)
    for name in ("c", "d"):  # the interval's standard error is the spread of the estimates over the studies
        ratio = tally.median_width(name) / (2 * quantile(0.95, 3)) / tally.spread(name)
        assert 0.7 < ratio < 1.3, (name, ratio)  # measured: 0.91 (c), 0.95 (d)


def test_the_noise_estimate_recovers_the_share_common_to_a_seed():
    """The simulation's noise is measured from the study's residuals; the estimator finds the seed share it is given."""
    from forgetlab.laws.forms import Design, Reference
    from forgetlab.laws.simulation import estimate_noise

    rng = np.random.default_rng(0)
    for share in (0.0, 0.5):
        truth = small_study_truth(share)
        found = []
        for _ in range(12):
            points = truth.simulate(rng)
            design = Design.build(points.P, points.N, points.L_ft, Reference.of(points.P, points.N))
            found.append(estimate_noise(points, truth.law.predict(truth.theta, design)[0]))
        assert abs(np.mean([f.seed_share for f in found]) - share) < 0.12, (share, found)
        assert np.mean([f.sd for f in found]) == pytest.approx(truth.noise.sd, rel=0.2)


def _crossed(seeds=(0, 1, 2), ranks=(1, 4, 16)):
    rank = np.repeat(np.array(ranks, dtype=float), len(seeds) * 5)
    seed = np.tile(np.repeat(np.array(seeds, dtype=float), 5), len(ranks))
    run = np.array([f"r{r:g}-s{s:g}" for r, s in zip(rank, seed)])
    return rank, run, seed


def test_crossed_seeds_are_drawn_whole_with_every_rank_and_nested_ones_within_their_rank():
    """One seed is one data order at every rank: by default each seed is left out in turn with all
    its ranks (the jackknife; its refits stored as pseudo-draws whose spread is the jackknife SE), or,
    on request, n − 1 of the n seeds are drawn whole; where no seed appears at two ranks the seeds
    are drawn within their rank as before."""
    from forgetlab.laws.resampling import SeedClusters, SeedJackknife, WithinRank, resampling_frame

    rank, run, seed = _crossed(seeds=(0, 1, 2, 3))
    frame = resampling_frame(rank, run, seed)
    assert isinstance(frame, SeedJackknife) and frame.labels == ("0", "1", "2", "3") and frame.df == 3
    assert frame.summary() == "whole seeds (4 seeds, each left out in turn with every rank of it; t on 3 df)"
    left = list(frame.replicates(np.random.default_rng(0), B=1000))
    assert frame.requested(1000) == len(left) == 4
    for out, index in zip((0, 1, 2, 3), left):
        assert set(seed[index]) == {0, 1, 2, 3} - {out} and len(index) == 3 * 15  # the other seeds, every rank
    draws = np.array([[1.0, 2.0], [1.2, 2.0], [0.8, 2.4], [1.0, 1.6]])
    pseudo = frame.combine(draws, np.array([1.0, 2.0]))
    jackknife_se = np.sqrt(3 / 4 * ((draws - draws.mean(axis=0)) ** 2).sum(axis=0))
    assert np.std(pseudo, axis=0, ddof=1) == pytest.approx(jackknife_se) and pseudo.mean(axis=0) == pytest.approx(
        [1.0, 2.0]
    )
    clusters = resampling_frame(rank, run, seed, unit="seed bootstrap")
    assert isinstance(clusters, SeedClusters) and not isinstance(clusters, SeedJackknife)
    rng = np.random.default_rng(0)
    for _ in range(20):
        index = clusters.resample(rng)
        drawn = pd.Series(seed[index]).value_counts()
        assert drawn.sum() == 3 * 15 and all(count % 15 == 0 for count in drawn)  # 3 whole seeds, each at all 3 ranks
        for s in drawn.index:
            assert sorted(set(rank[index][seed[index] == s])) == [1.0, 4.0, 16.0]
    nested = rank * 100 + seed  # every seed value at one rank only
    within = resampling_frame(rank, run, nested)
    assert isinstance(within, WithinRank) and within.unit == "seed within rank" and within.df == 3 * 3
    assert resampling_frame(rank, run, None).unit == "run within rank"
    forced = resampling_frame(rank, run, seed, unit="within rank")
    assert isinstance(forced, WithinRank) and forced.df == 9


def test_one_seed_gives_no_interval_and_two_give_one_with_a_caution():
    from forgetlab.laws.resampling import resampling_frame

    rank, run, seed = _crossed(seeds=(7,))
    one = resampling_frame(rank, run, seed)
    assert one.unit == "seed" and "single seed" in one.problem()
    two = resampling_frame(*_crossed(seeds=(0, 1)))
    assert two.problem() is None and "only 2 seeds" in two.caution() and two.df == 1
    assert resampling_frame(*_crossed(seeds=(0, 1, 2))).caution() is None
    frame = _study_frame(np.random.default_rng(1), 0.0, seeds_of=lambda group: range(2))
    result = fit_points(
        get_law("linear"),
        points_for_frame(frame, "linear"),
        bootstrap_options=BootstrapOptions(B=20),
        run_validation=False,
    )
    assert result.bootstrap["unit"] == "seed" and result.bootstrap["units"] == 2 and result.bootstrap["df"] == 1
    assert "only 2 seeds" in result.bootstrap["caution"] and result.intervals["c"][0] is not None


def test_an_interval_that_contains_zero_is_read_as_the_effect_it_rules_out():
    from forgetlab.laws.equivalence import excluded, offset_over, verdict

    assert excluded(-0.016, 0.005) == 0.016 and excluded(0.049, 0.168) is None and excluded(None, 0.1) is None
    assert verdict("d", -0.016, 0.005) == "|d| < 0.016"
    assert verdict("d", 0.049, 0.168) == "d > 0.049" and verdict("d", -0.052, -0.032) == "d < -0.032"
    low, high = offset_over(-0.016, 0.005, np.log(64))
    assert high == pytest.approx(0.016 * np.log(64)) and low == -high
    assert offset_over(0.049, 0.168, np.log(64)) == pytest.approx((0.049 * np.log(64), 0.168 * np.log(64)))


def test_seed_streams_differ_per_named_stream_and_repeat_per_seed():
    a, b = BootstrapOptions(seed=3, stream="replay=0"), BootstrapOptions(seed=3, stream="replay=0.05")
    assert (
        a.rng().integers(0, 10**9, 5).tolist()
        == BootstrapOptions(seed=3, stream="replay=0").rng().integers(0, 10**9, 5).tolist()
    )
    assert a.rng().integers(0, 10**9, 5).tolist() != b.rng().integers(0, 10**9, 5).tolist()


def test_few_successful_refits_withhold_the_intervals_and_say_how_many():
    """18 of 100 refits succeeding used to print zero-width intervals with no note."""
    options = BootstrapOptions(B=100)
    result = BootstrapResult(np.zeros((18, 2)), 100, {"non_finite": 82})
    reason = withheld(result, options)
    assert reason is not None and "only 18 of 100 bootstrap refits succeeded" in reason
    assert withheld(BootstrapResult(np.zeros((90, 2)), 100, {"non_finite": 10}), options) is None
    jackknife = BootstrapResult(np.zeros((3, 2)), 4, {"non_finite": 1}, complete=True)  # a seed that cannot be left out
    assert "3 of 4 refits with a seed left out succeeded: the jackknife needs every one" in withheld(jackknife, options)


def test_a_fit_that_did_not_converge_gets_no_interval_and_says_why():
    """Refits around a point the optimiser had not finished with would measure the optimiser."""
    from forgetlab.laws.fitting import FitOptions
    from forgetlab.laws.points import points_for

    frame = _study_frame(np.random.default_rng(2), shift_by_rank=0.0)
    law = get_law("power-additive")
    points = points_for(frame, law, "hard", "sim")
    starved = fit_points(law, points, fit_options=FitOptions(max_nfev=3, starts=1),
                         bootstrap_options=BootstrapOptions(B=20), run_validation=False)  # fmt: skip
    assert starved.status == "not_converged"
    assert all(interval == [None, None] for interval in starved.intervals.values())
    assert "did not converge" in starved.bootstrap["withheld"] and starved.bootstrap["succeeded"] == 0
    fitted = fit_points(law, points, bootstrap_options=BootstrapOptions(B=20), run_validation=False)
    assert (
        fitted.status in ("converged", "on_bound")
        and fitted.bootstrap["succeeded"] == fitted.bootstrap["replicates"] == 3
    )


def _study_frame(rng, shift_by_rank: float, groups=("a",), seeds_of=lambda group: range(3)) -> pd.DataFrame:
    """Points in the points view's layout; `shift_by_rank` moves L_f off the line by d·ln(P/P0)."""
    rows = []
    for group in groups:
        for rank in (1, 4, 16, 64):
            for seed in seeds_of(group):
                points = simulate_study(replace(StudyDesign(), ranks=(rank,), seeds=1), rng)
                L_f = points.L_f + shift_by_rank * np.log(rank / 8.0)
                for n, ft, f in zip(points.N, points.L_ft, L_f):
                    rows.append({"dataset": "sim", "run_id": f"{group}-r{rank}-s{seed}", "rank": rank, "P": 1e5 * rank,
                                 "N": n, "L_ft": ft, "L_f_hard": f, "seed": seed, "group": group})  # fmt: skip
    return pd.DataFrame(rows)


def _points(frame: pd.DataFrame) -> Points:
    return points_for_frame(frame, "linear-rank-steps")


def points_for_frame(frame: pd.DataFrame, law: str) -> Points:
    from forgetlab.laws.points import points_for

    return points_for(frame, get_law(law), "hard", "sim")


@pytest.mark.parametrize("d", [0.0, 0.05])
def test_rank_term_d_is_found_with_its_interval_and_zero_when_rank_only_moves_along_the_line(d):
    frame = _study_frame(np.random.default_rng(5), shift_by_rank=d)
    result = fit_points(
        get_law("linear-rank"), _points(frame), bootstrap_options=BootstrapOptions(B=60), run_validation=False
    )
    low, high = result.intervals["d"]
    assert low <= d <= high
    assert (low > 0) == (d > 0)  # the interval excludes 0 exactly when rank moves runs off the line
    steps = fit_points(
        get_law("linear-rank-steps"), _points(frame), bootstrap_options=BootstrapOptions(B=60), run_validation=False
    )
    low, high = steps.intervals["e"]
    assert low <= 0 <= high  # N acts only through L_ft in these data


def _saturating(N: np.ndarray, P: np.ndarray) -> np.ndarray:
    return 1.4 - 0.05 * (P / 1e6) ** -0.3 - 2.0 * N**-0.6


def test_held_out_later_steps_tell_a_saturating_law_from_one_that_keeps_rising():
    """Fit the first half of the steps, predict the rest: the shifted form wins on saturating
    data, the logarithmic form on data that keep rising."""
    rows = []
    for rank in (1, 4, 16, 64):
        for seed in range(2):
            for n in range(60, 1201, 60):
                rows.append((f"r{rank}-s{seed}", rank, 1e5 * rank, float(n), float(seed)))
    run, rank, P, N, seed = (np.array(c) for c in zip(*rows))
    noise = np.random.default_rng(2).normal(0, 0.002, len(N))
    rising = 1.0 + 0.02 * np.log(P / 1e6) + 0.08 * np.log(N / 300)
    errors = {}
    for name, L_f in (("saturating", _saturating(N, P)), ("rising", rising)):
        points = Points("sim", "hard", run, rank.astype(float), P, N, None, L_f + noise, seed)
        for law in ("power-additive", "log-steps"):
            result = fit_points(get_law(law), points, bootstrap_options=BootstrapOptions(B=1))
            errors[name, law] = result.validation["later_steps"]["L_f"]["rmse"]
    assert errors["saturating", "power-additive"] < errors["saturating", "log-steps"]
    assert errors["rising", "log-steps"] < errors["rising", "power-additive"]


@pytest.mark.parametrize("seeds_b, design", [((0, 1, 2), "paired"), ((10, 11, 12), "independent")])
def test_by_groups_are_paired_only_when_the_design_pairs_them(workdir, seeds_b, design):
    """Group b is group a's forgetting × 1.05, so every fit of b is a's with c × 1.05 (the log
    residuals are the same). Same (rank, seed) units in both groups: resampled with the same draws,
    so the difference of c has 5% of the width of a's interval. Other seeds: own streams, and the
    width of a difference of independent estimates (about √2 times a's).
    (Before, every group used the same seed: groups of equal size were paired by accident.)"""
    import json

    from typer.testing import CliRunner

    from forgetlab.cli import app

    rng = np.random.default_rng(7)
    a = _study_frame(rng, 0.0)
    b = a.assign(
        group="b", L_f_hard=a["L_f_hard"] * 1.05, run_id="b" + a["run_id"], seed=a["seed"].map(dict(enumerate(seeds_b)))
    )
    pd.concat([a, b]).to_csv(workdir / "points.csv", index=False)
    (workdir / "points.sql").write_text("SELECT * FROM read_csv('points.csv')")
    done = CliRunner().invoke(app, ["fit", "--query", "points.sql", "--by", "group", "--law", "linear", "-B", "40",
                                    "--no-store", "--no-validation", "--json", "out.json"])  # fmt: skip
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())  # rich wraps the title
    assert ("paired by (rank, seed)" in said) == (design == "paired")
    assert "resampling whole seeds (3 seeds, each left out in turn with every rank of it; t on 2 df)" in said
    assert ("resampled independently" in said) == (design == "independent")
    rows = json.loads((workdir / "out.json").read_text())["comparison"]
    row = next(r for r in rows if r["quantity"] == "c" and r["group"] == "b")
    base = next(r for r in rows if r["quantity"] == "c" and r["group"] == "a")
    assert row["design"] == design
    assert row["difference"] == pytest.approx(0.05 * base["estimate"], rel=1e-4)
    width = row["difference_interval"][1] - row["difference_interval"][0]
    base_width = base["interval"][1] - base["interval"][0]
    if design == "paired":
        assert width == pytest.approx(0.05 * base_width, rel=0.02)
    else:
        assert 0.8 * base_width < width < 2.5 * base_width
    streams = {
        f["extra"]["group"]: f["bootstrap"]["stream"] for f in json.loads((workdir / "out.json").read_text())["fits"]
    }
    assert streams == ({"a": None, "b": None} if design == "paired" else {"a": "group=a", "b": "group=b"})


def test_intervals_of_bounded_parameters_stay_within_their_bounds():
    """Data that keep rising like a logarithm put a power-additive exponent on its lower bound
    1e-4; its symmetric interval used to reach below 0 (β: [-0.040, 0.040] in the study)."""
    from forgetlab.laws.forms import law_names
    from forgetlab.laws.forms.base import Reference

    for name in law_names():  # clipping relies on this: a public name shared with an internal one is that value
        law = get_law(name)
        theta = np.linspace(0.2, 0.9, len(law.params))
        public = law.to_public(theta, Reference(3e5, 90.0))
        assert all(public[p.name] == theta[i] for i, p in enumerate(law.params) if p.name in public), name
    rows = [(f"r{rank}-s{seed}", rank, 1e5 * rank, float(n), float(seed))
            for rank in (1, 4, 16, 64) for seed in range(3) for n in range(60, 601, 60)]  # fmt: skip
    run, rank, P, N, seed = (np.array(c) for c in zip(*rows))
    noise = np.random.default_rng(4).normal(0, 0.01, len(N))
    rising = 1.0 + 0.02 * np.log(P / 1e6) + 0.08 * np.log(N / 300) + noise
    result = fit_points(get_law("power-additive"), Points("sim", "hard", run, rank.astype(float), P, N, None, rising, seed),
                        bootstrap_options=BootstrapOptions(B=40), run_validation=False)  # fmt: skip
    assert result.on_bound  # an exponent at its lower bound (here α: P's effect is a logarithm too)
    for name in result.on_bound:
        low, high = result.intervals[name]
        assert low == pytest.approx(1e-4) and high > low
    for spec in get_law("power-additive").params:
        if spec.name in result.intervals:
            low, high = result.intervals[spec.name]
            assert spec.lower <= low <= high <= spec.upper
