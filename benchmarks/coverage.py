"""Coverage of the fits' bootstrap intervals on simulated studies with a known linear law.

One command: `.venv/bin/python benchmarks/coverage.py [--studies 400] [--bootstrap 200] [--seeds 2 4]`.

Each study (forgetlab.laws.simulation: 4 ranks × S seeds × 9 steps, run-level random effects
τ_u = 0.02 nats, AR(1) within-run noise φ = 0.7, σ = 0.01) is fitted with the real pipeline
(linear law, hard variant, stratified seed-within-rank bootstrap); the output is the share of
studies whose 95% intervals of c and s hold the true values, per number of seeds per rank. The
figures go into docs/laws.md §6.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from forgetlab.laws.fitting import single_threaded_blas  # noqa: E402
from forgetlab.laws.simulation import StudyDesign, coverage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    print(f"{args.studies} simulated studies per row, B = {args.bootstrap}, nominal 95%")
    print("| seeds per rank | runs | coverage of c | coverage of s | median width of c | withheld | seconds |")
    print("|---|---|---|---|---|---|---|")
    for seeds in args.seeds:
        design = replace(StudyDesign(), seeds=seeds)
        started = time.perf_counter()
        with single_threaded_blas():
            found = coverage(design, args.studies, args.bootstrap)
        runs = seeds * len(design.ranks)
        print(
            f"| {seeds} | {runs} | {found['coverage']['c']:.3f} | {found['coverage']['s']:.3f} | "
            f"{found['median_width']['c']:.4f} | {found['withheld']} | {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
