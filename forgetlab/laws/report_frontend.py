"""`forgetlab report DIR`: every results table and figure of docs/results.md, from files in DIR.

DIR holds the study's points, `points.parquet` (the `points` view with every step, written by
`forgetlab query queries/laws.sql -p min_step=-1 --format parquet --output DIR/points.parquet`).
The command fits them and writes, beside them:

  fits.json    every fit's full FitResult (what the tables are read from)
  results.md   the tables (docs/results.md reads its numbers from here; `report_markdown.py`)
  figures/     the PNG figures (per data set: L_f against L_ft with per-rank lines, curves in N)

Tables: (1) every law per data set, hard forgetting with soft and KL beside it: goodness and
held-out error by rank and in N; (2) the linear law and the rank/steps terms d, e with intervals,
per variant: the paper's "rank only moves a run along the line" as a test; (3) sensitivity of c,
d and the held-out later-steps error to the early-step cut; (4) the end of training per rank,
mean and spread over seeds. Nothing is typed by hand: rerunning the command regenerates all.

A front-end over the fitting engine (`engine.py`): read the points, plan one `FitJob` per (set,
law, variant, cut), run them (`--jobs` at a time) into the sinks (`sinks.py`: figures, fits.json,
results.md). Runs that cannot share a law are split into sets of their own
(`comparability.SPLIT`). Intervals resample whole seeds where the seeds are crossed with the ranks
(docs/laws.md §6), and the header says per data set what was resampled and how many; where a
term's interval contains 0 the report says what it rules out (table 2b). One base per report:
points or folders (`--with`) of different base models are refused (`bases.py`), and the header
names the base and any folder beside this one that ran on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from forgetlab.errors import UserError
from forgetlab.laws.bases import POINTS_FILE
from forgetlab.laws.report_markdown import CUTS, VARIANTS

TERM_LAWS = ("linear", "linear-rank", "linear-rank-steps")


@dataclass(frozen=True)
class ReportRequest:
    """What `forgetlab report` does; every field but `jobs` (which changes no result) is recorded in results.md."""

    folder: Path
    bootstrap: int = 200
    seed: int = 0
    min_step: int = 50
    """The early-step cut of the main tables (keep N > min_step; the paper's 50)."""
    laws: Optional[tuple[str, ...]] = None
    """Laws of table 1; None: every registered law."""
    jobs: int = 1
    """Fits run at once, each in its own process (fits are single-threaded; the results do not
    depend on it: every fit draws from its own seeded stream)."""
    others: tuple[Path, ...] = ()
    """Further results folders (`--with`) whose points are fitted beside FOLDER's, as their own sets
    (e.g. a long-N arm, `code · steps=3000`); refused when they ran on another base."""

    def check(self) -> None:
        """One-line refusals of option values, before anything is read."""
        from forgetlab.laws.forms import get_law

        for name in self.laws or ():
            get_law(name)  # an unknown name is refused before any fitting
        if self.bootstrap < 1:
            raise UserError(
                f"--bootstrap {self.bootstrap}: need at least 1 replicate (200 or more for the tables you publish)"
            )
        if self.jobs < 1:
            raise UserError(f"--jobs {self.jobs}: must be at least 1")


def run_report(request: ReportRequest, console) -> Path:
    """Fit, tabulate, draw; returns the path of results.md."""
    from forgetlab.laws.engine import run
    from forgetlab.laws.forms import law_names
    from forgetlab.laws.sinks import ReportFigures, ReportFitsJson, ResultsMarkdown

    request.check()
    frame = read_points(request.folder, request.others)
    laws = request.laws or law_names()
    datasets = sorted(frame["dataset"].astype(str).unique())
    planned = plan(frame, datasets, laws, request)
    figures = ReportFigures(request.folder / "figures", datasets, request.min_step)
    markdown = ResultsMarkdown(request.folder / "results.md", request, frame, datasets, laws, planned, figures, console)
    jobs = [job for job in planned.values() if job is not None]
    run(jobs, [figures, ReportFitsJson(request.folder / "fits.json", planned), markdown], request.jobs, console)
    return request.folder / "results.md"


def read_points(folder: Path, others: tuple[Path, ...] = ()):
    """The study's points (and those of `others`), one fitted set per data set and comparable runs
    (see `split_sets`); refused when they hold more than one base model (`bases.check_one_base`)."""
    import pandas as pd

    from forgetlab.laws.bases import check_one_base

    frames = {}
    for where in (folder, *others):
        path = Path(where) / POINTS_FILE
        if not path.is_file():
            raise UserError(
                f"no {path}: write the study's points there first, e.g. forgetlab query queries/laws.sql "
                f"-p min_step=-1 --format parquet --output {path}"
            )
        frame = pd.read_parquet(path)
        if "dataset" not in frame.columns or "run_id" not in frame.columns or "N" not in frame.columns:
            raise UserError(f"{path} lacks dataset, run_id or N: write it from the points view (queries/laws.sql)")
        frames[str(path if not others else where)] = frame
    check_one_base(frames)
    return split_sets(pd.concat(list(frames.values()), ignore_index=True))


def split_sets(frame):
    """Runs that cannot share a law are never pooled: within a data set, runs that differ in a
    comparability column (model, base_fingerprint, context_length, lr, steps: e.g. a long-N arm
    with another step budget) become their own set, labelled 'code · steps=3000'."""
    from forgetlab.laws.comparability import SPLIT, comparable_sets

    frame = frame.copy()
    labels = frame["dataset"].astype(str)
    for name in labels.unique():
        for suffix, rows in comparable_sets(frame[labels == name], f"data set '{name}'", SPLIT):
            labels.loc[rows.index] = name + suffix
    frame["dataset"] = labels
    return frame


def plan(frame, datasets: list[str], laws, request: ReportRequest) -> dict:
    """Every law at the main cut (validated), then the term laws at each early-step cut (only
    `linear` validated there: table 3 reads its later-steps error), without repeats: key (set, law,
    variant, cut) -> its FitJob, or None where the law cannot be fitted to the points ('-' in the tables)."""
    planned: dict = {}
    for dataset in datasets:
        for variant in VARIANTS:
            wanted = [(law, request.min_step, True) for law in laws]
            wanted += [(law, cut, law == "linear") for cut in CUTS for law in TERM_LAWS]
            for law, cut, validation in wanted:
                key = (dataset, law, variant, cut)
                if key not in planned:
                    planned[key] = _job(frame, key, validation, request)
    return planned


def _job(frame, key: tuple, validation: bool, request: ReportRequest):
    """The FitJob of one planned fit, or None when the law cannot be fitted to these points."""
    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.complete_fit import QuerySource
    from forgetlab.laws.engine import FitJob
    from forgetlab.laws.fitting import FitOptions
    from forgetlab.laws.forms import get_law
    from forgetlab.laws.points import points_for

    dataset, law, variant, cut = key
    rows = frame[(frame["dataset"].astype(str) == dataset) & (frame["N"] > cut)]
    try:
        points = points_for(rows, get_law(law), variant, dataset)
    except UserError:
        return None
    source = QuerySource(str(request.folder / POINTS_FILE), f"N > {cut}", {"min_step": cut})
    options = BootstrapOptions(B=request.bootstrap, seed=request.seed)
    return FitJob(
        key,
        law,
        points,
        FitOptions(),
        options,
        validation,
        source,
        title=f"{law} to {dataset} (L_f {variant}, N > {cut})",
    )
