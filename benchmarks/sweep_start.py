"""What a sweep spends starting its points: warm start (forked from one process that imported the
training libraries once) against a fresh Python process per point (`FORGETLAB_WARM_START=0`).

    .venv/bin/python benchmarks/sweep_start.py [--points 8] [--jobs 2] [--steps 10]

Both sides run the same sweep of tiny embedded runs (`embedded-tiny`, so the runs themselves
take a few seconds and start-up dominates, as it does in the first minutes of a real CPU sweep)
into fresh stores under one temporary folder; the base is built before the timings. The fresh
side runs first, then the warm side, then the fresh side again; the baseline is the mean of the
two fresh passes (the machine drifts). Printed: each pass's wall time, the median seconds per
point reported by the sweep, and warm / fresh ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from tiny import R4, TINY_BASE, overrides_block  # noqa: E402  (the overrides that make r4 a seconds-long run, as in the tests)


def sweep_file(folder: Path, points: int, steps: int) -> Path:
    (folder / "r4.yaml").write_text(R4.read_text())
    items = [*TINY_BASE, f"train.steps={steps}", f"train.eval_every={steps}"]
    overrides = overrides_block(items)
    path = folder / "bench.yaml"
    path.write_text(f"name: bench\nbase: r4.yaml\noverrides:\n{overrides}grid:\n  seed: {list(range(points))}\n")
    return path


def one_pass(folder: Path, sweep: Path, jobs: int, warm: bool) -> tuple[float, float]:
    """(wall seconds of the whole `forgetlab sweep`, median seconds per point as the sweep reports)."""
    store = folder / ("warm" if warm else "fresh") / str(time.time_ns())
    store.mkdir(parents=True)
    environment = dict(os.environ, FORGETLAB_WARM_START="1" if warm else "0", MLFLOW_DISABLE_TELEMETRY="true")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", "sweep", "--config", str(sweep), "--jobs", str(jobs)],
        cwd=store,
        env=environment,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sweep failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    per_point = [float(seconds) for seconds in re.findall(r"FINISHED in (\d+) s", done.stdout)]
    return wall, statistics.median(per_point)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        os.environ["FORGETLAB_CACHE"] = str(folder / "cache")
        sweep = sweep_file(folder, args.points, args.steps)
        subprocess.run(
            [sys.executable, "-m", "forgetlab", "base", "build", "--name", "embedded-tiny", "--quiet"],
            check=True,
            capture_output=True,
        )
        fresh_a = one_pass(folder, sweep, args.jobs, warm=False)
        warm = one_pass(folder, sweep, args.jobs, warm=True)
        fresh_b = one_pass(folder, sweep, args.jobs, warm=False)
    fresh_wall, fresh_point = (fresh_a[0] + fresh_b[0]) / 2, (fresh_a[1] + fresh_b[1]) / 2
    print(f"sweep of {args.points} tiny points, --jobs {args.jobs}, {args.steps} updates each, {os.cpu_count()} cores")
    print(
        f"fresh process per point: wall {fresh_a[0]:.1f} s / {fresh_b[0]:.1f} s, median point {fresh_a[1]:.0f} s / {fresh_b[1]:.0f} s"
    )
    print(f"warm start:              wall {warm[0]:.1f} s, median point {warm[1]:.0f} s")
    print(
        f"warm / fresh: wall {warm[0] / fresh_wall:.2f}x, per point {warm[1] / fresh_point:.2f}x "
        f"(sweep {fresh_wall / warm[0]:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
