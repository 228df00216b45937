"""`forgetlab report DIR`: every results table and figure of the README, from files in DIR.

DIR holds the study's points, `points.parquet` (the `points` view with every step, written by
`forgetlab query queries/laws.sql -p min_step=-1 --format parquet --output DIR/points.parquet`).
The command fits them and writes, beside them:

  fits.json    every fit's full FitResult (what the tables are read from)
  results.md   the tables (the README's results section links here)
  figures/     the PNG figures (per data set: L_f against L_ft with per-rank lines, curves in N)

Tables: (1) every law per data set, hard forgetting with soft and KL beside it: goodness and
held-out error by rank and in N; (2) the linear law and the rank/steps terms d, e with intervals,
per variant: the paper's "rank only moves a run along the line" as a test; (3) sensitivity of c,
d and the held-out later-steps error to the early-step cut; (4) the end of training per rank,
mean and spread over seeds. Nothing is typed by hand: rerunning the command regenerates all.

Intervals resample whole seeds where the seeds are crossed with the ranks (docs/laws.md §6), and
the header says per data set what was resampled and how many; where a term's interval contains 0
the report says what it rules out (table 2b). One base per report: points or folders (`--with`)
of different base models are refused (`bases.py`), and the header names the base and any folder
beside this one that ran on another.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from forgetlab.errors import UserError

from forgetlab.laws.study_tables import CUTS, VARIANTS

TERM_LAWS = ("linear", "linear-rank", "linear-rank-steps")
POINTS_FILE = "points.parquet"


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
    from forgetlab.laws.selection import COMPARABILITY, label

    frame = frame.copy()
    labels = frame["dataset"].astype(str)
    for name in labels.unique():
        rows = labels == name
        varying = [c for c in COMPARABILITY if c in frame.columns and frame.loc[rows, c].map(label).nunique() > 1]
        for column in varying:
            labels = labels.where(~rows, labels + f" · {column}=" + frame[column].map(label))
    frame["dataset"] = labels
    return frame


def fit_one(frame, law_name: str, variant: str, dataset: str, cut: int, request: ReportRequest, validation: bool = True):
    """One fit of the report, or None when the law cannot be fitted to these points (said in the table)."""
    from forgetlab.laws.bootstrap import BootstrapOptions
    from forgetlab.laws.forms import get_law
    from forgetlab.laws.pipeline import QuerySource, fit_points
    from forgetlab.laws.points import points_for

    rows = frame[(frame["dataset"].astype(str) == dataset) & (frame["N"] > cut)]
    law = get_law(law_name)
    try:
        points = points_for(rows, law, variant, dataset)
    except UserError:
        return None
    source = QuerySource(str(request.folder / POINTS_FILE), f"N > {cut}", {"min_step": cut})
    options = BootstrapOptions(B=request.bootstrap, seed=request.seed)
    return fit_points(law, points, bootstrap_options=options, run_validation=validation, query=source)


@dataclass(frozen=True)
class PlannedFit:
    """One fit of the report: the key its result is stored under, and whether it is validated."""

    dataset: str
    law: str
    variant: str
    cut: int
    validation: bool

    @property
    def key(self) -> tuple:
        return (self.dataset, self.law, self.variant, self.cut)


def planned_fits(datasets: list[str], laws, min_step: int) -> list[PlannedFit]:
    """Every law at the main cut (validated), then the term laws at each early-step cut (only
    `linear` validated there: table 3 reads its later-steps error), without repeats."""
    planned: dict[tuple, PlannedFit] = {}
    for dataset in datasets:
        for variant in VARIANTS:
            for law in laws:
                fit = PlannedFit(dataset, law, variant, min_step, True)
                planned.setdefault(fit.key, fit)
            for cut in CUTS:
                for law in TERM_LAWS:
                    fit = PlannedFit(dataset, law, variant, cut, law == "linear")
                    planned.setdefault(fit.key, fit)
    return list(planned.values())


def fit_all(frame, planned: list[PlannedFit], request: ReportRequest, console) -> dict[tuple, Any]:
    """Run the planned fits, `request.jobs` at a time; results keyed as planned, in plan order."""
    if request.jobs <= 1:
        fits = {}
        for fit in planned:
            console.print(f"fitting {fit.law} to {fit.dataset} (L_f {fit.variant}, N > {fit.cut}) ...")
            fits[fit.key] = _fit_planned(frame, fit, request)
        return fits
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: the parent may hold BLAS or torch threads that a forked child would inherit locked.
    context = multiprocessing.get_context("spawn")
    done: dict[tuple, Any] = {}
    with _one_blas_thread_in_children(), ProcessPoolExecutor(
        request.jobs, mp_context=context, initializer=_hold_frame, initargs=(frame,)
    ) as pool:
        pending = {pool.submit(_fit_held, fit, request): fit for fit in planned}
        try:
            for number, future in enumerate(as_completed(pending), 1):
                fit = pending[future]
                done[fit.key] = future.result()
                console.print(f"[{number}/{len(planned)}] fitted {fit.law} to {fit.dataset} (L_f {fit.variant}, N > {fit.cut})")
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a failed fit (or Ctrl-C) stops the report now, not after the queue
            raise
    return {fit.key: done[fit.key] for fit in planned}


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


_HELD_FRAME = None


def _hold_frame(frame) -> None:
    """Worker initializer: the points are sent once per process, not once per fit."""
    global _HELD_FRAME
    _HELD_FRAME = frame


def _fit_held(fit: PlannedFit, request: ReportRequest):
    return _fit_planned(_HELD_FRAME, fit, request)


def _fit_planned(frame, fit: PlannedFit, request: ReportRequest):
    return fit_one(frame, fit.law, fit.variant, fit.dataset, fit.cut, request, fit.validation)


def run_report(request: ReportRequest, console) -> Path:
    """Fit, tabulate, draw; returns the path of results.md."""
    from forgetlab.laws.forms import law_names
    from forgetlab.laws.study_tables import (
        end_of_training, equivalence_table, laws_table, saturation_table, sensitivity_table, terms_table,
    )  # fmt: skip

    frame = read_points(request.folder, request.others)
    laws = request.laws or law_names()
    datasets = sorted(frame["dataset"].astype(str).unique())
    fits = fit_all(frame, planned_fits(datasets, laws, request.min_step), request, console)
    figures = draw(frame, fits, datasets, request)
    sections = [
        _header(request, frame, fits, datasets, console),
        laws_table(fits, datasets, laws, request.min_step),
        terms_table(fits, datasets, request.min_step),
        equivalence_table(fits, frame, datasets, request.min_step),
        sensitivity_table(fits, datasets),
        end_of_training(frame, datasets),
        saturation_table(frame, fits, datasets, request.min_step),
        "## Figures\n\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in figures) + "\n",
    ]
    _write(request.folder, fits, sections)
    return request.folder / "results.md"


def _header(request: ReportRequest, frame, fits: dict, datasets: list[str], console) -> str:
    runs = frame["run_id"].nunique()
    laws = f" --laws {','.join(request.laws)}" if request.laws else ""
    others = "".join(f" --with {p.as_posix()}" for p in request.others)
    return (
        "# Results of the study (generated)\n\n"
        f"Generated by `forgetlab report {request.folder.as_posix()} -B {request.bootstrap} --seed {request.seed} "
        f"--min-step {request.min_step}{laws}{others}` from `{POINTS_FILE}` ({len(frame)} points, {runs} runs); do not edit by hand. "
        "L_f is hard forgetting unless a column says otherwise (the paper's L_f is below what soft forgetting can reach); "
        "intervals are 95% intervals over seeds (docs/laws.md §6; what they were measured over is below), clipped to the bounds of bounded "
        "parameters (exponents), 'no interval' where the design has a single seed (or a single run at a rank) or too few refits "
        "succeeded, '(not converged)' where the optimiser's budget ran out (an estimate without an interval). "
        "Points with N > min-step.\n\n"
        + _base_lines(request, frame, console)
        + _resampling_lines(fits, datasets, request.min_step)
    )


def _base_lines(request: ReportRequest, frame, console) -> str:
    """The base model of these points, and the results folders beside this one that ran on another."""
    from forgetlab.laws.bases import bases_of, describe, other_bases, short

    bases = bases_of(frame)
    base = next(iter(bases), None)
    full = f": `{base}`" if base else ""
    lines = [f"- **Base**: {describe(bases)}{full}. Results of another base are not comparable with these (forgetting is "
             "measured against the base itself)."]  # fmt: skip
    for sibling, theirs in other_bases(request.folder, base):
        if sibling.resolve() in {Path(p).resolve() for p in request.others}:
            continue
        named = ", ".join(short(b) for b in theirs if b != base)
        note = f"`../{sibling.name}` beside this folder ran on another base ({named}): do not compare its numbers with these"
        console.print(f"[yellow]note:[/yellow] {note}")
        lines.append(f"- **Not comparable**: {note}.")
    return "\n".join(lines) + "\n"


def _resampling_lines(fits: dict, datasets: list[str], cut: int) -> str:
    """Per data set: what the intervals' bootstrap resampled, how many, and any caution (two seeds)."""
    lines = []
    for dataset in datasets:
        result = fits.get((dataset, "linear", "hard", cut))
        boot = result.bootstrap if result is not None else {}
        if boot.get("summary"):
            caution = f" Caution: {boot['caution']}." if boot.get("caution") else ""
            lines.append(f"- **Intervals of {dataset}**: over {boot['summary']}.{caution}")
    return ("\n".join(lines) + "\n") if lines else ""


def draw(frame, fits: dict, datasets: list[str], request: ReportRequest) -> list[Path]:
    """Per data set: the rank-term figure (L_f against L_ft, a line per rank) and the curves in N."""
    from forgetlab.laws.figures import write_figures
    from forgetlab.laws.forms import get_law
    from forgetlab.laws.points import points_for

    written = []
    folder = request.folder / "figures"
    for dataset in datasets:
        rows = frame[(frame["dataset"].astype(str) == dataset) & (frame["N"] > request.min_step)]
        for law_name in ("linear-rank", "power-additive"):
            result = fits.get((dataset, law_name, "hard", request.min_step))
            if result is None:
                continue
            law = get_law(law_name)
            scratch = folder / f".{dataset}-{law_name}"
            for path in write_figures(law, points_for(rows, law, "hard", dataset), result, scratch):
                target = folder / f"{dataset}-{law_name}-hard-{path.name}"
                path.replace(target)
                written.append(target)
            scratch.rmdir()
    return written


def _write(folder: Path, fits: dict, sections: list[str]) -> None:
    import json

    from forgetlab.laws.result import json_safe

    stored = [
        {"dataset": k[0], "law": k[1], "variant": k[2], "min_step": k[3], "fit": (v.to_dict() if v is not None else None)}
        for k, v in fits.items()
    ]  # fmt: skip
    (folder / "fits.json").write_text(json.dumps(json_safe(stored), indent=1, allow_nan=False))
    (folder / "results.md").write_text("\n".join(sections))
