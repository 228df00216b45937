"""Where the results of the fitting engine go: each sink takes every fit as it is delivered (`add`, in
job order) and finishes once all are in (`close`).

  FigureFiles      a fit's PNGs, one folder per fit (`fit`: --figures, or a scratch folder for the store)
  FitStore         one MLflow run and one `fits` row per fit (`store.py`)
  TerminalTables   each fit's table, then the laws side by side (`terminal.py`)
  GroupComparison  `fit --by`: each group against the baseline, per data set and law (`compare.py`)
  FitsJson         `fit --json`: {"fits": [...], "comparison": [...]}
  ReportFigures    `report`: the rank-term and curve figures per data set, in DIR/figures
  ReportFitsJson   `report`: DIR/fits.json, every planned fit under its key (null where none could be fitted)
  ResultsMarkdown  `report`: DIR/results.md (`report_markdown.py`)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from forgetlab.laws.engine import Fitted
from forgetlab.laws.text import plural


class Sink:
    """Takes each fit as it is delivered, and finishes once all are in; both do nothing by default."""

    def add(self, fitted: Fitted) -> Fitted:
        return fitted

    def close(self, fitted: list[Fitted]) -> None:
        pass


def keyed(fitted: list[Fitted], keys) -> dict[tuple, Any]:
    """Every planned key, in plan order, with its result (None where no fit was made)."""
    found = dict.fromkeys(keys)
    found.update((item.job.key, item.result) for item in fitted)
    return found


class FigureFiles(Sink):
    """Each fit's figures in `folder`/<data set>-<law>-<variant>[-<by>=<group>]/."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def add(self, fitted: Fitted) -> Fitted:
        from forgetlab.laws.figures import write_figures
        from forgetlab.laws.forms import get_law

        result = fitted.result
        by = result.extra.get("by")
        suffix = "" if by is None else f"-{by}={result.extra.get('group')}"
        folder = self.folder / f"{result.dataset}-{result.law}-{result.variant}{suffix}"
        return replace(fitted, figures=tuple(write_figures(get_law(fitted.job.law), fitted.job.points, result, folder)))


class FitStore(Sink):
    """Each fit as an MLflow run (with its figures) and a `fits` row, at once: a later failure cannot orphan it."""

    def __init__(self, tracking_uri: Optional[str], db_path: Path, console):
        import uuid

        self.tracking_uri, self.db_path, self.console = tracking_uri, Path(db_path), console
        self.group = uuid.uuid4().hex
        """Shared by the fits of one command (tag `forgetlab.fit_group`)."""

    def add(self, fitted: Fitted) -> Fitted:
        from forgetlab.laws.store import artifact_folder, log_fit_run, write_fit_rows

        result = log_fit_run(fitted.result, list(fitted.figures), self.tracking_uri, self.group, fitted.job.points)
        write_fit_rows([result], self.db_path)
        return replace(fitted, result=result, location=artifact_folder(result.fit_id, self.tracking_uri))

    def close(self, fitted: list[Fitted]) -> None:
        self.console.print(
            f"recorded {plural(len(fitted), 'fit')} in {self.db_path} (table fits) and MLflow experiment forgetlab-fits"
        )


class TerminalTables(Sink):
    """Each fit's table as it ends; with several fits, one line per fit side by side."""

    def __init__(self, console):
        self.console = console

    def add(self, fitted: Fitted) -> Fitted:
        from forgetlab.laws.terminal import print_fit

        print_fit(fitted.result, self.console, fitted.location)
        return fitted

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.terminal import print_laws_compared

        if len(fitted) > 1:
            print_laws_compared([item.result for item in fitted], self.console)


class GroupComparison(Sink):
    """`fit --by`: per data set, every group's fits against the baseline's (table, figure; `rows` for --json)."""

    def __init__(self, by: str, at: tuple, designs: dict[str, str], folder: Path, variant: str, console):
        self.by, self.at, self.designs, self.folder, self.variant, self.console = (
            by,
            at,
            designs,
            Path(folder),
            variant,
            console,
        )
        self.rows: list[dict[str, Any]] = []

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.compare import GroupFit, compare, comparison_figure, reference_point
        from forgetlab.laws.forms import get_law
        from forgetlab.laws.terminal import print_group_comparison

        by = self.by
        for name in dict.fromkeys(item.job.points.dataset for item in fitted):
            mine = [GroupFit(item.result.extra["group"], get_law(item.job.law), item.job.points, item.result)
                    for item in fitted if item.job.points.dataset == name]  # fmt: skip
            at = reference_point([fit.points for fit in mine], *self.at)
            by_law: dict[str, list] = {}
            for fit in mine:
                by_law.setdefault(fit.law.name, []).append(fit)
            groups = list(dict.fromkeys(fit.group for fit in mine))
            if len(groups) < 2:
                self.console.print(
                    f"[yellow]note:[/yellow] {name}: only {by}={groups[0]} in the points; nothing to compare"
                )
            for law_fits in by_law.values():
                law_rows = compare(law_fits, by, at, self.designs[name])
                print_group_comparison(law_rows, self.console)
                self.rows.extend(law_rows)
            path = comparison_figure(by_law, by, at, self.folder / f"{name}-by-{by}-{self.variant}.png")
            if path is not None:
                self.console.print(f"comparison figure: {path}")


class FitsJson(Sink):
    """`fit --json PATH`: every fit's full result, and the `--by` comparison's rows."""

    def __init__(self, path: Path, comparison: Optional[GroupComparison], console):
        self.path, self.comparison, self.console = Path(path), comparison, console

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.result import json_safe

        output: dict[str, Any] = {"fits": [item.result.to_dict() for item in fitted]}
        if self.comparison is not None:
            output["comparison"] = self.comparison.rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(json_safe(output), indent=2, allow_nan=False))
        self.console.print(f"full results: {self.path}")


class ReportFigures(Sink):
    """Per data set, the figures of `linear-rank` (L_f against L_ft, a line per rank) and
    `power-additive` (the curves in N), hard L_f at the main cut, as DIR/figures/<set>-<law>-hard-<figure>.png."""

    LAWS = ("linear-rank", "power-additive")

    def __init__(self, folder: Path, datasets: list[str], cut: int):
        self.folder, self.datasets, self.cut = Path(folder), datasets, cut
        self.written: list[Path] = []

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.figures import write_figures
        from forgetlab.laws.forms import get_law

        found = {item.job.key: item for item in fitted}
        for dataset in self.datasets:
            for law_name in self.LAWS:
                item = found.get((dataset, law_name, "hard", self.cut))
                if item is None:
                    continue
                scratch = self.folder / f".{dataset}-{law_name}"
                for path in write_figures(get_law(law_name), item.job.points, item.result, scratch):
                    target = self.folder / f"{dataset}-{law_name}-hard-{path.name}"
                    path.replace(target)
                    self.written.append(target)
                scratch.rmdir()


class ReportFitsJson(Sink):
    """DIR/fits.json: one entry per planned fit (data set, law, variant, min_step, fit or null), in plan order."""

    def __init__(self, path: Path, keys):
        self.path, self.keys = Path(path), list(keys)

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.result import json_safe

        stored = [
            {"dataset": k[0], "law": k[1], "variant": k[2], "min_step": k[3], "fit": (v.to_dict() if v is not None else None)}
            for k, v in keyed(fitted, self.keys).items()
        ]  # fmt: skip
        self.path.write_text(json.dumps(json_safe(stored), indent=1, allow_nan=False))


class ResultsMarkdown(Sink):
    """DIR/results.md: the header, the tables and the figures (`report_markdown.results_markdown`)."""

    def __init__(self, path: Path, request, frame, datasets: list[str], laws, keys, figures: ReportFigures, console):
        self.path, self.request, self.frame, self.datasets, self.laws = Path(path), request, frame, datasets, laws
        self.keys, self.figures, self.console = list(keys), figures, console

    def close(self, fitted: list[Fitted]) -> None:
        from forgetlab.laws.report_markdown import results_markdown

        fits = keyed(fitted, self.keys)
        self.path.write_text(
            results_markdown(
                self.request, self.frame, fits, self.datasets, self.laws, self.figures.written, self.console
            )
        )
