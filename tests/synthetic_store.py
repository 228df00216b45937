"""A small MLflow store of finished forgetlab-shaped runs, logged directly (no training): seconds to build.

Ranks 1, 2, 4, 8 × seeds 0, 1 on one data set, evaluated every 20 steps to 200, with L_ft
falling and forgetting rising in N and P (a noiseless inverse-linear relation plus a small
seed-dependent wiggle), for commands that read a store: `fit`, `plot`, the wheel test.
"""

from __future__ import annotations

import math
from pathlib import Path

RANKS = (1, 2, 4, 8)
SEEDS = (0, 1)
STEPS = tuple(range(0, 201, 20))
T0 = 1_700_000_000_000


def curve(rank: int, seed: int, step: int) -> dict[str, float]:
    P = 14_592 * rank
    ft_loss = 3.0 - 0.4 * math.log1p(step / 20) - 0.02 * math.log(rank) + 0.003 * seed
    kl = 0.002 * (P**0.2) * (step**0.5) * (1 + 0.01 * seed)
    return {
        "ft_loss": ft_loss,
        "forget_soft": 4.0 + kl,
        "forget_hard": 3.0 + kl,
        "forget_kl": kl,
        "forget_data": 4.5 + kl / 2,
        "forget_agree": 1.0 - kl / 4,
        "train_loss": ft_loss + 0.05,
    }


def build_store(folder: Path) -> Path:
    """`folder/mlruns/mlflow.db` holding the runs; returns the database path."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    database = folder.resolve() / "mlruns" / "mlflow.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(f"sqlite:///{database}")
    experiment_id = client.create_experiment("forgetlab", artifact_location=(database.parent / "artifacts").as_uri())
    for rank in RANKS:
        for seed in SEEDS:
            run = client.create_run(
                experiment_id,
                run_name=f"r{rank}-kjv-s{seed}",
                tags={"forgetlab.kind": "run", "forgetlab.dataset": "kjv"},
            )
            params = {
                "lora.rank": rank,
                "P": 14_592 * rank,
                "data.name": "kjv",
                "seed": seed,
                "train.lr": "3e-4",
                "train.steps": STEPS[-1],
                "model.name": "embedded",
                "lora.target_modules": "q_proj,v_proj",
                "fingerprint.base": "abc123",
            }
            client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
            metrics = [
                Metric(key, value, T0 + step * 1000, step)
                for step in STEPS
                for key, value in curve(rank, seed, step).items()
            ]
            client.log_batch(run.info.run_id, metrics=metrics)
            client.set_terminated(run.info.run_id, "FINISHED")
    return database
