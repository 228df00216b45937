"""PNG figures of one fit (matplotlib, Agg backend: no display needed).

  forgetting_vs_ft.png       L_f against L_ft per rank, with the fit (paper Fig. 2)
  vs_steps.png               L_ft and L_f against N per rank, with the fitted curves (Fig. 3)
  vs_P.png                   L_f against P at fixed N (three N of the data)
  predicted_vs_observed.png  every target, predicted against observed, with the diagonal
The curves drawn are the point estimate; the title carries the status, R² and held-out RMSE.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgetlab.laws.forms import Design, LawForm, Reference
from forgetlab.laws.plotting import pyplot, save
from forgetlab.laws.points import Points
from forgetlab.laws.result import FitResult
from forgetlab.laws.text import fixed

CURVE_POINTS = 120


def _colours(ranks: np.ndarray):
    plt = pyplot()
    cmap = plt.get_cmap("viridis")
    return {r: cmap(i / max(len(ranks) - 1, 1)) for i, r in enumerate(ranks)}


def _title(result: FitResult) -> str:
    r2 = result.stats.get("L_f", {}).get("r2")
    held = result.validation.get("leave_one_rank_out", {}).get("L_f", {}).get("rmse")
    parts = [f"{result.dataset}: {result.law} ({result.variant})", result.status]
    if r2 is not None:
        parts.append(f"R²(L_f)={r2:.4f}")
    if held is not None:
        parts.append(f"held-out RMSE={held:.4f}")
    return ", ".join(parts)


def write_figures(law: LawForm, points: Points, result: FitResult, folder: Path) -> list[Path]:
    """Write every figure that applies to this law and these points; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    theta = np.array(result.internal["estimate"], dtype=float)
    reference = Reference(result.reference["P0"], result.reference["N0"])
    written = []
    has_ft = points.L_ft is not None and np.isfinite(points.L_ft).all()
    if has_ft:
        written.append(_forgetting_vs_ft(law, points, result, theta, reference, folder / "forgetting_vs_ft.png"))
    if law.uses_P():
        written.append(_vs_steps(law, points, result, theta, reference, folder / "vs_steps.png"))
        written.append(_vs_P(law, points, result, theta, reference, folder / "vs_P.png"))
    written.append(_predicted_vs_observed(law, points, result, theta, reference, folder / "predicted_vs_observed.png"))
    return written


def _curve_design(P: float, N: np.ndarray, reference: Reference) -> Design:
    return Design.build(np.full(N.shape, P), N, None, reference)


def _forgetting_vs_ft(law, points, result, theta, reference, path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ranks = np.unique(points.rank)
    colours = _colours(ranks)
    for r in ranks:
        sel = points.rank == r
        ax.scatter(points.L_ft[sel], points.L_f[sel], s=6, color=colours[r], alpha=0.6, label=f"r={r:g}")
    if law.name == "linear":
        x = np.linspace(points.L_ft.min(), points.L_ft.max(), CURVE_POINTS)
        c, s = result.params["c"], result.params["s"]
        ax.plot(
            x,
            -c * x + s,
            color="black",
            lw=1.5,
            label=f"L_f = −{c:.4f}·L_ft + {s:.4f}  R²={result.stats['L_f']['r2']:.4f}",
        )
    elif "L_ft" in law.inputs:  # a linear law with a rank term: one line per rank, at N = N0
        for r in ranks:
            sel = points.rank == r
            x = np.linspace(points.L_ft[sel].min(), points.L_ft[sel].max(), CURVE_POINTS)
            design = Design.build(np.full(x.shape, points.P[sel][0]), np.full(x.shape, reference.N0), x, reference)
            ax.plot(x, law.predict(theta, design)[0], color=colours[r], lw=1.4)
        d = result.params.get("d")
        ax.plot([], [], color="grey", label=f"{law.equation}, d = {fixed(d, 4)}" if d is not None else law.equation)
    else:
        for r in ranks:
            sel = points.rank == r
            N = np.linspace(points.N[sel].min(), points.N[sel].max(), CURVE_POINTS)
            prediction = law.predict(theta, _curve_design(float(points.P[sel][0]), N, reference))
            if "L_ft" in law.targets:
                ax.plot(prediction[0], prediction[1], color=colours[r], lw=1.2)
    ax.set_xlabel("L_ft (fine-tuning loss, nats)")
    ax.set_ylabel(f"L_f ({result.variant} forgetting, nats)")
    ax.set_title(_title(result), fontsize=8)
    ax.legend(fontsize=7)
    return save(fig, path)


def _vs_steps(law, points, result, theta, reference, path) -> Path:
    plt = pyplot()
    targets = list(law.targets)
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 4.2), squeeze=False)
    ranks = np.unique(points.rank)
    colours = _colours(ranks)
    observed = {"L_ft": points.L_ft, "L_f": points.L_f}
    for column, target in enumerate(targets):
        ax = axes[0, column]
        for r in ranks:
            sel = points.rank == r
            ax.scatter(points.N[sel], observed[target][sel], s=5, color=colours[r], alpha=0.5)
            N = np.linspace(points.N[sel].min(), points.N[sel].max(), CURVE_POINTS)
            prediction = law.predict(theta, _curve_design(float(points.P[sel][0]), N, reference))
            ax.plot(N, prediction[column], color=colours[r], lw=1.4, label=f"r={r:g}")
        ax.set_xlabel("N (optimizer steps)")
        ax.set_ylabel(f"{target} (nats)")
        ax.legend(fontsize=7)
    fig.suptitle(_title(result), fontsize=8)
    return save(fig, path)


def _vs_P(law, points, result, theta, reference, path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    steps = np.unique(points.N)
    chosen = np.unique(steps[[0, len(steps) // 2, len(steps) - 1]])
    P = np.geomspace(points.P.min(), points.P.max(), CURVE_POINTS)
    row = law.targets.index("L_f")
    cmap = plt.get_cmap("plasma")
    for i, N in enumerate(chosen):
        colour = cmap(i / max(len(chosen) - 1, 1) * 0.8)
        sel = points.N == N
        ax.scatter(points.P[sel], points.L_f[sel], s=14, color=colour)
        prediction = law.predict(theta, Design.build(P, np.full(P.shape, N), None, reference))
        ax.plot(P, prediction[row], color=colour, lw=1.4, label=f"N={N:g}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels of a short log axis overlap
    ax.set_xlabel("P (fine-tuned parameters)")
    ax.set_ylabel(f"L_f ({result.variant} forgetting, nats)")
    ax.set_title(_title(result), fontsize=8)
    ax.legend(fontsize=7)
    return save(fig, path)


def _predicted_vs_observed(law, points, result, theta, reference, path) -> Path:
    plt = pyplot()
    targets = list(law.targets)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.6 * len(targets), 4.4), squeeze=False)
    prediction = law.predict(theta, Design.build(points.P, points.N, points.L_ft, reference))
    observed = points.targets(law)
    for column, target in enumerate(targets):
        ax = axes[0, column]
        ax.scatter(observed[column], prediction[column], s=5, alpha=0.5)
        low = min(observed[column].min(), prediction[column].min())
        high = max(observed[column].max(), prediction[column].max())
        ax.plot([low, high], [low, high], color="black", lw=1)
        stats = result.stats.get(target, {})
        ax.set_title(
            f"{target}: R²={stats.get('r2', float('nan')):.4f}  RMSE={stats.get('rmse', float('nan')):.4f}", fontsize=8
        )
        ax.set_xlabel(f"observed {target}")
        ax.set_ylabel(f"predicted {target}")
    fig.suptitle(_title(result), fontsize=8)
    return save(fig, path)
