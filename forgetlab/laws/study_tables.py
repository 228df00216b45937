"""The markdown tables of `forgetlab report` (see `study_report.py`), from fitted results only."""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetlab.laws.equivalence import offset_over, verdict
from forgetlab.laws.text import fixed, interval, number

VARIANTS = ("hard", "soft", "kl")
CUTS = (0, 25, 50, 100)


def _rmse(result, split: str) -> str:
    if result is None:
        return "-"
    return number(result.validation.get(split, {}).get("L_f", {}).get("rmse"))


def _r2(result) -> str:
    return "-" if result is None else number(result.stats["L_f"]["r2"], 4)


def laws_table(fits: dict, datasets: list[str], laws, cut: int) -> str:
    """Every law per data set: hard in full, soft and KL beside it (R² and later-steps RMSE)."""
    lines = [
        "## 1. The laws, per data set\n",
        "Held-out RMSE (nats): leave-one-rank-out; fit every rank but the largest and predict it; fit the first half "
        "of the steps and predict the rest (*later steps*: the test of saturation in N — `paper-joint` and "
        "`power-additive` saturate, `log-steps` and `power-steps` do not). '-' where the law could not be fitted.\n",
        "| data set | law | R² hard | RMSE hard | leave-one-rank-out | largest rank | later steps | identified | "
        "R² soft | later steps soft | R² KL | later steps KL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for law in laws:
            hard, soft, kl = (fits.get((dataset, law, v, cut)) for v in VARIANTS)
            rmse = "-" if hard is None else number(hard.stats["L_f"]["rmse"])
            identified = "-" if hard is None else ("yes" if hard.identifiability["identified"] else "no")
            lines.append(
                f"| {dataset} | {law} | {_r2(hard)} | {rmse} | {_rmse(hard, 'leave_one_rank_out')} | "
                f"{_rmse(hard, 'small_to_largest')} | {_rmse(hard, 'later_steps')} | {identified} | "
                f"{_r2(soft)} | {_rmse(soft, 'later_steps')} | {_r2(kl)} | {_rmse(kl, 'later_steps')} |"
            )
    return "\n".join(lines) + "\n"


def _param(result, name: str) -> str:
    if result is None or name not in result.params:
        return "-"
    if result.status == "not_converged":  # an estimate the optimiser had not finished with: no interval, said
        return f"{fixed(result.params[name], 3)} (not converged)"
    low, high = result.intervals.get(name, [None, None])
    return f"{fixed(result.params[name], 3)} {interval(low, high, 3)}"


def terms_table(fits: dict, datasets: list[str], cut: int) -> str:
    """c of the linear law, and the rank term d and steps term e at equal L_ft, per variant."""
    lines = [
        "## 2. Does rank (or N) move a run off the L_f–L_ft line?\n",
        "`linear`: L_f = −c·L_ft + s. `linear-rank`: + d·ln(P/P0). `linear-rank-steps`: + d·ln(P/P0) + e·ln(N/N0). "
        "The paper says rank only moves a run along the line (d = 0); an interval of d that excludes 0 says otherwise "
        "at this scale.\n",
        "| data set | L_f | c (linear) | d (linear-rank) | d (linear-rank-steps) | e (linear-rank-steps) |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for variant in VARIANTS:
            linear, rank, steps = (fits.get((dataset, law, variant, cut)) for law in ("linear", "linear-rank", "linear-rank-steps"))
            lines.append(
                f"| {dataset} | {variant} | {_param(linear, 'c')} | {_param(rank, 'd')} | {_param(steps, 'd')} | {_param(steps, 'e')} |"
            )
    return "\n".join(lines) + "\n"


TERMS = (("linear-rank", "d"), ("linear-rank-steps", "d"), ("linear-rank-steps", "e"))


def _says(result, name: str) -> str:
    """What the interval of a term rules out (`equivalence.verdict`), '-' without one."""
    if result is None or name not in result.params or result.status == "not_converged":
        return "-"
    low, high = result.intervals.get(name, [None, None])
    return "-" if low is None or high is None else verdict(name, low, high).replace("|", "\\|")  # a pipe would split the cell


def _moved(frame, dataset: str, variant: str, term: str, cut: int) -> tuple[str, float]:
    """How far the runs' own L_f moved over the range a term spans: between the largest and smallest
    rank at the end of training (d), or from the first to the last step kept, per run (e); means over runs."""
    column = f"L_f_{variant}"
    rows = frame[(frame["dataset"].astype(str) == dataset) & (frame["N"] > cut)]
    if term == "d":
        last = rows.loc[rows.groupby("run_id")["N"].idxmax()]
        means = last.groupby("rank")[column].mean()
        return f"rank {means.index.max():g} − rank {means.index.min():g}, end of training", float(means.iloc[-1] - means.iloc[0])
    ends = rows.sort_values("N").groupby("run_id")[column].agg(["first", "last"])
    return "last step − first step kept, per run", float((ends["last"] - ends["first"]).mean())


def equivalence_table(fits: dict, frame, datasets: list[str], cut: int) -> str:
    """The rank and steps terms as offsets in nats over the measured range: where an interval
    contains 0, the effect it rules out (docs/laws.md §6), beside how far L_f itself moved."""
    lines = [
        "### 2b. What the intervals of the terms rule out\n",
        "An interval that contains 0 is not evidence of 0: it bounds the effect (|d| < X at 95%). d·ln(P/P0) over the "
        "measured ranks is an offset at equal L_ft of at most X·ln(P_max/P_min) nats; e·ln(N/N0) over the measured steps, "
        "at equal L_ft and rank, X·ln(N_max/N_min). Beside it, how far the runs' own L_f moved over the same range.\n",
        "| data set | L_f | law | term | estimate [95%] | the interval says | over | offset at equal L_ft (nats) | L_f moved (nats) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for variant in VARIANTS:
            for law, term in TERMS:
                result = fits.get((dataset, law, variant, cut))
                if result is None or term not in result.params or result.status == "not_converged":
                    continue
                low, high = result.intervals.get(term, [None, None])
                if low is None or high is None:
                    continue
                if term == "d":
                    ranks = [float(r) for r in result.data["P_per_rank"]]
                    where, (first, last) = f"ranks {min(ranks):g}–{max(ranks):g}", result.data["P_range"]
                else:
                    first, last = result.data["N_range"]
                    where = f"N {first:g}–{last:g}"
                bound = offset_over(low, high, float(np.log(last / first)))
                shown = f"< {fixed(bound[1], 3)}" if low <= 0 <= high else f"{fixed(bound[0], 3)} to {fixed(bound[1], 3)}"
                how, moved = _moved(frame, dataset, variant, term, cut)
                lines.append(
                    f"| {dataset} | {variant} | {law} | {term} | {_param(result, term)} | {_says(result, term)} | {where} | "
                    f"{shown} | {fixed(moved, 3)} ({how}) |"
                )
    return "\n".join(lines) + "\n"


def sensitivity_table(fits: dict, datasets: list[str]) -> str:
    """c, d and the linear law's later-steps error at each early-step cut."""
    lines = [
        "## 3. Sensitivity to the early-step cut (`--min-step`)\n",
        "| data set | L_f | min-step | c (linear) | d (linear-rank) | d: the interval says | linear: later steps RMSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for variant in VARIANTS:
            for cut in CUTS:
                linear, rank = fits.get((dataset, "linear", variant, cut)), fits.get((dataset, "linear-rank", variant, cut))
                lines.append(
                    f"| {dataset} | {variant} | {cut} | {_param(linear, 'c')} | {_param(rank, 'd')} | {_says(rank, 'd')} | "
                    f"{_rmse(linear, 'later_steps')} |"
                )
    return "\n".join(lines) + "\n"


def _spread(values: np.ndarray) -> str:
    if len(values) < 2:
        return f"{fixed(values.mean(), 3)} (1 seed)"
    return f"{fixed(values.mean(), 3)} ± {fixed(values.std(ddof=1), 3)}"


def end_of_training(frame, datasets: list[str]) -> str:
    """Per data set and rank, at each run's last step: mean ± standard deviation over seeds."""
    columns = [c for c in ("L_ft", "L_f_hard", "L_f_soft", "L_f_kl") if c in frame.columns]
    lines = [
        "## 4. The end of training, per rank\n",
        "At each run's last evaluation step; mean ± standard deviation over seeds (nats per token).\n",
        "| data set | rank | seeds | N | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    last = frame.loc[frame.groupby("run_id")["N"].idxmax()]
    for dataset in datasets:
        mine = last[last["dataset"].astype(str) == dataset]
        for rank, runs in mine.groupby("rank"):
            cells: list[Any] = [_spread(runs[c].to_numpy(dtype=float)) for c in columns]
            steps = "/".join(f"{n:g}" for n in sorted(runs["N"].unique()))
            lines.append(f"| {dataset} | {rank:g} | {len(runs)} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _at_nearest(run, n: float) -> float:
    """L_f (hard) at the evaluated step nearest to n."""
    return float(run["L_f_hard"].to_numpy()[np.abs(run["N"].to_numpy(dtype=float) - n).argmin()])


def saturation_table(frame, fits: dict, datasets: list[str], cut: int) -> str:
    """Does hard forgetting keep rising in N? The rise over the last two doublings of each run, and the
    saturating and non-saturating forms' N parameters with their intervals."""
    lines = [
        "## 5. Does forgetting keep rising in N?\n",
        "Per run, the rise of hard L_f over the second-to-last doubling of the steps, Δ₁ = L_f(N/2) − L_f(N/4), and "
        "over the last, Δ₂ = L_f(N) − L_f(N/2); mean ± standard deviation over seeds. If L_f grows like ln N, Δ₂ = Δ₁ "
        "(ratio 1); if it saturates, Δ₂ < Δ₁ (for E − B·N^(−β), ratio 2^(−β)); a ratio above 1 grows faster than ln N.\n",
        "| data set | rank | seeds | N | Δ₁ | Δ₂ | Δ₂/Δ₁ |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        mine = frame[frame["dataset"].astype(str) == dataset]
        for rank, runs in mine.groupby("rank"):
            first, second, ratio, ends = [], [], [], set()
            for _, run in runs.groupby("run_id"):
                end = float(run["N"].max())
                quarter, half, last = (_at_nearest(run, n) for n in (end / 4, end / 2, end))
                first.append(half - quarter)
                second.append(last - half)
                ratio.append((last - half) / (half - quarter) if half != quarter else np.nan)
                ends.add(end)
            cells = [_spread(np.asarray(values, dtype=float)) for values in (first, second, ratio)]
            steps = "/".join(f"{n:g}" for n in sorted(ends))
            lines.append(f"| {dataset} | {rank:g} | {len(first)} | {steps} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Fitted over every rank (hard L_f, 95% intervals as in §2): `power-additive` β, the exponent of N in "
        "E − A·P^(−α) − B·N^(−β) (near its lower bound 1e-4: no saturation, the N term is a logarithm); "
        "`log-steps` B, nats per e-fold of N in E + A·ln P + B·ln N.\n",
        "| data set | power-additive β | power-additive E | log-steps B |",
        "|---|---|---|---|",
    ]
    for dataset in datasets:
        additive, log_steps = fits.get((dataset, "power-additive", "hard", cut)), fits.get((dataset, "log-steps", "hard", cut))
        lines.append(f"| {dataset} | {_param(additive, 'beta')} | {_param(additive, 'E')} | {_param(log_steps, 'B')} |")
    return "\n".join(lines) + "\n"
