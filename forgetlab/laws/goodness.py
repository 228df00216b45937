"""Goodness of fit, on the natural (nats) scale so numbers compare with the paper's R².

Per target (L_f, and L_ft for joint forms), over the n fitted points:
  R² = 1 − SS_res/SS_tot;  RMSE = √(SS_res/n);  MAE = mean |residual|;
  AIC = n·ln(SS_res/n) + 2k;  BIC = n·ln(SS_res/n) + k·ln(n)   (Gaussian likelihood, constants dropped)
with k = the number of internal parameters that move that target's prediction (2 for linear,
5 for power-additive, 6 per target for paper-joint). Compare AIC/BIC only between fits of the
same target on the same points.
"""

from __future__ import annotations

import numpy as np

from forgetlab.laws.forms import Design, LawForm


def errors(prediction: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    residual = prediction - observed
    return {
        "n": int(residual.size),
        "rmse": float(np.sqrt(np.mean(residual**2))) if residual.size else float("nan"),
        "mae": float(np.mean(np.abs(residual))) if residual.size else float("nan"),
    }


def goodness(law: LawForm, theta: np.ndarray, design: Design, y: np.ndarray) -> dict[str, dict[str, float]]:
    prediction = law.predict(theta, design)
    stats = {}
    for row, target in enumerate(law.targets):
        observed, predicted = y[row], prediction[row]
        n, k = observed.size, law.n_params_for(target)
        ss_res = float(np.sum((predicted - observed) ** 2))
        ss_tot = float(np.sum((observed - observed.mean()) ** 2))
        log_term = n * np.log(max(ss_res, 1e-300) / n)
        stats[target] = {
            **errors(predicted, observed),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "k": k,
            "aic": float(log_term + 2 * k),
            "bic": float(log_term + k * np.log(n)),
        }
    return stats
