"""Coverage of the fits' 95% intervals on simulated studies with the study's own design.

One command (its output is docs/laws.md §6):

    .venv/bin/python benchmarks/coverage.py [--studies 200] [--bootstrap 100] [--dataset code]

The truth is a law fitted to the study's points (docs/results/study/points.parquet, hard L_f,
N > 50: 7 ranks × 4 seeds × 25 steps); each simulated study keeps the study's runs (rank, seed,
N, L_ft) and puts on L_f the truth plus noise measured from the fit's residuals (a per-curve
offset plus an AR(1) series; forgetlab.laws.simulation, calibrated for the estimator's bias on
25 steps), a share of whose variance is common to every rank of a seed (none, a quarter, half;
the study's own share is printed). Each study is fitted with the real pipeline four ways
(forgetlab.laws.coverage): the jackknife over whole seeds (`seed`, the default), the earlier
bootstrap of seeds within ranks (`within rank`), per-seed fits with t on seeds − 1 (`per seed`),
and on `linear-rank` also the cluster bootstrap over whole seeds (`seed bootstrap`); the same
simulated studies for every method. The last rows repeat the default at 2 and 3 seeds (the
study's first seeds) with half the variance shared. About 11 minutes of one core at the defaults,
nearly all of it in the two bootstrap schemes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402

from forgetlab.laws.coverage import METHODS, coverage  # noqa: E402
from forgetlab.laws.forms import get_law  # noqa: E402
from forgetlab.laws.points import points_for  # noqa: E402
from forgetlab.laws.simulation import StudyTruth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def truth_for(folder: Path, dataset: str, law_name: str, min_step: int, seed: int) -> StudyTruth:
    import pandas as pd

    frame = pd.read_parquet(folder / "points.parquet")
    rows = frame[(frame["dataset"].astype(str) == dataset) & (frame["N"] > min_step)]
    law = get_law(law_name)
    return StudyTruth.fitted(law, points_for(rows, law, "hard", dataset)).calibrated(np.random.default_rng(seed))


def row(law: str, share: float, seeds: int, method: str, tally, names, seconds: float) -> str:
    cells = " | ".join(f"{tally.coverage(n):.3f}" for n in names)
    widths = " | ".join(f"{tally.median_width(n):.3g}" for n in names if n in ("d", "e"))
    return f"| {law} | {share:g} | {seeds} | {method} | {cells} | {widths} | {tally.withheld} | {seconds:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "docs" / "results" / "study")
    parser.add_argument("--dataset", default="code")
    parser.add_argument("--laws", nargs="+", default=["linear-rank", "linear-rank-steps"])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--methods", nargs="+", default=["seed", "within rank", "per seed"], choices=METHODS)
    parser.add_argument(
        "--seed-bootstrap-on",
        nargs="*",
        default=["linear-rank"],
        help="Laws on which the cluster bootstrap over seeds is compared too (the costly rows).",
    )
    parser.add_argument(
        "--few-seeds",
        type=int,
        nargs="*",
        default=[2, 3],
        help="Also the default method at these numbers of seeds (half shared).",
    )
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=100,
        help="Replicates of the bootstrap schemes compared (the default, the seed jackknife, needs none).",
    )
    parser.add_argument("--min-step", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    truths = {law: truth_for(args.folder, args.dataset, law, args.min_step, args.seed) for law in args.laws}
    print(f"`{' '.join(['benchmarks/coverage.py'] + sys.argv[1:])}`\n")
    print(f"Simulated studies on {args.folder.relative_to(ROOT) if args.folder.is_relative_to(ROOT) else args.folder}, "
          f"data set {args.dataset}, hard L_f, N > {args.min_step}; {args.studies} studies per row, B = {args.bootstrap}, "
          f"nominal 95%, seed {args.seed}.\n")  # fmt: skip
    for law, truth in truths.items():
        p, n = truth.points, truth.noise
        design = f"{len(np.unique(p.rank))} ranks × {len(np.unique(p.seed))} seeds × {len(np.unique(p.N))} steps = {len(p)} points"
        values = ", ".join(f"{k} = {v:.4g}" for k, v in truth.public.items())
        print(f"- {law}: {design}; truth {values}; noise sd {n.sd:.4f} nats, offset share {n.offset:.2f}, "
              f"φ {n.autocorrelation:.2f}; the study's own seed share {n.seed_share:.2f}")  # fmt: skip
    print()
    for law, truth in truths.items():
        names = truth.law.public_names
        terms = [n for n in names if n in ("d", "e")]
        print("| law | seed share | seeds | method | " + " | ".join(f"coverage of {n}" for n in names) + " | "
              + " | ".join(f"median width of {n}" for n in terms) + " | withheld | seconds |")  # fmt: skip
        print("|---" * (6 + len(names) + len(terms)) + "|")
        every = len(np.unique(truth.points.seed))
        methods = args.methods + (
            ["seed bootstrap"] if law in args.seed_bootstrap_on and "seed bootstrap" not in args.methods else []
        )
        plan = [(share, every, method) for share in args.shares for method in methods]
        plan += [(0.5, seeds, "seed") for seeds in args.few_seeds]
        for share, seeds, method in plan:
            started = time.process_time()
            study = truth.with_seed_share(share).keep_seeds(seeds)
            tally = coverage(study, args.studies, args.bootstrap, seed=args.seed, methods=(method,))[method]
            print(row(law, share, seeds, method, tally, names, time.process_time() - started), flush=True)
        print()


if __name__ == "__main__":
    main()
