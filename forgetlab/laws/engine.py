"""The one fitting engine: fit jobs, run in order or in N processes, each result handed to the sinks.

`forgetlab fit` and `forgetlab report` differ only in what they plan and where the results go:

- a `FitJob` is everything one fit needs (the law, its points, the fit and bootstrap options,
  whether to validate, the query recorded with it) and the key its result is filed under;
- `run_jobs` fits them one after the other in this process, or `processes` at a time, each in a
  spawned process; the results come back in job order either way and are the same, because a fit
  depends on its job alone (each fit is single-threaded and draws from its own seeded stream);
- `run` hands each result, in job order, to the sinks (`sinks.py`: figures, the fit store, the
  terminal, JSON, results.md), then closes them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from forgetlab.laws.bootstrap import BootstrapOptions
from forgetlab.laws.complete_fit import QuerySource
from forgetlab.laws.fitting import FitOptions


@dataclass(frozen=True, eq=False)
class FitJob:
    """One fit to do, and the key its result is filed under."""

    key: tuple
    """What the result is known by: (data set, group, law) for `fit`, (set, law, variant, cut) for `report`."""
    law: str
    """The law's name (`forms.get_law`)."""
    points: Any
    """The law's points (`points.Points`, checked by `points_for`)."""
    fit_options: FitOptions = FitOptions()
    bootstrap: BootstrapOptions = BootstrapOptions()
    validation: bool = True
    """Run the held-out checks (leave-one-rank-out, small-to-largest, later steps)."""
    query: QuerySource = QuerySource()
    """The query that selected the points, recorded with the fit."""
    extra: dict = field(default_factory=dict)
    """Recorded with the result as `FitResult.extra` (what the runs share; a `--by` group)."""
    title: str = ""
    """The job in a progress line: 'linear to code (120 points, 6 runs, jackknife over 2 seeds)'."""

    def run(self):
        """The fit's `FitResult` (`complete_fit.fit_points`), carrying `extra`."""
        from forgetlab.laws.complete_fit import fit_points
        from forgetlab.laws.forms import get_law

        result = fit_points(
            get_law(self.law), self.points, self.fit_options, self.bootstrap, self.validation, self.query
        )
        return replace(result, extra={**result.extra, **self.extra}) if self.extra else result


@dataclass(frozen=True, eq=False)
class Fitted:
    """A job with its result, as the sinks pass it on (each may add what it wrote)."""

    job: FitJob
    result: Any
    """The `FitResult` (with its fit id once the fit store recorded it)."""
    figures: tuple[Path, ...] = ()
    """The fit's PNG files (`sinks.FigureFiles`)."""
    location: Optional[str] = None
    """Where the recorded fit's artifacts live (`sinks.FitStore`)."""


def run(jobs: Sequence[FitJob], sinks: Sequence, processes: int, console) -> list[Fitted]:
    """Fit every job (`run_jobs`), pass each result in job order through the sinks, then close them."""
    fitted = []
    for job, result in run_jobs(jobs, processes, console):
        record = Fitted(job, result)
        for sink in sinks:
            record = sink.add(record)
        fitted.append(record)
    for sink in sinks:
        sink.close(fitted)
    return fitted


def run_jobs(jobs: Sequence[FitJob], processes: int, console) -> Iterator[tuple[FitJob, Any]]:
    """(job, result) in job order, fitting `processes` jobs at a time (1: here, one after the other).

    Progress goes to `console`: 'fitting TITLE ...' before each fit in order, '[k/n] fitted TITLE' as
    each ends in processes. A failed fit (or Ctrl-C) stops the run at once, not after the queue.
    """
    if processes <= 1 or len(jobs) <= 1:
        for job in jobs:
            console.print(f"fitting {job.title} ...")
            yield job, job.run()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: the parent may hold BLAS or torch threads that a forked child would inherit locked.
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        with _one_blas_thread_in_children():  # the workers start while the jobs are submitted
            pending = {pool.submit(_run_job, job): index for index, job in enumerate(jobs)}
        done: dict[int, Any] = {}
        delivered = 0
        try:
            for count, future in enumerate(as_completed(pending), 1):
                index = pending[future]
                done[index] = future.result()
                console.print(f"[{count}/{len(jobs)}] fitted {jobs[index].title}")
                while delivered in done:  # hand results on in job order, as soon as the earlier ones are in
                    yield jobs[delivered], done.pop(delivered)
                    delivered += 1
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _run_job(job: FitJob):
    return job.run()


@contextmanager
def _one_blas_thread_in_children():
    """Workers start with one BLAS thread even where threadpoolctl (which fits use to limit it)
    is missing: N workers x all cores' threads would oversubscribe the machine."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def resampling_note(points, options: BootstrapOptions) -> str:
    """What a fit's intervals will resample, for its progress line: 'jackknife over 4 seeds', 'B=1000 ...'."""
    from forgetlab.laws.bootstrap import sampling_frame
    from forgetlab.laws.resampling import SeedClusters, SeedJackknife

    frame = sampling_frame(points.rank, points.run_id, points.seed, options.unit)
    problem = frame.problem()
    if problem is not None:
        return f"no resampling: {problem.split(':')[0]}"
    if isinstance(frame, SeedJackknife):
        return f"jackknife over {frame.units} seeds"
    if isinstance(frame, SeedClusters):
        return f"bootstrap B={options.B} over {frame.units} whole seeds"
    return f"bootstrap B={options.B}, {'seeds' if frame.unit.startswith('seed') else 'runs'} within ranks"
