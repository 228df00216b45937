"""The names of every tag and metric forgetlab writes to MLflow, in one torch-free place.

Tags (`forgetlab.*`) say what a run is and who owns it; the warehouse, the sweep and `--resume`
read them. Metrics: see below.

The warehouse's `curves` pivot (warehouse/schema.py, which must not import torch), the
forgetting and penalty sums (forgetting.py, training.py) and the run summary (commands/run.py)
read these lists. The probes and curves.py write their keys literally, next to the computation;
a real-run test (tests/test_probes.py) checks that every key a run logs is in CURVE_METRICS.
Definitions: README, "What a run measures"; the contract: docs/tracking-contract.md.
"""

from __future__ import annotations

# Tags on every forgetlab run (docs/tracking-contract.md).
KIND = "forgetlab.kind"  # "run", "sweep" or "fit"
DATASET = "forgetlab.dataset"
COMMAND = "forgetlab.command"  # the command line that started the run (secrets scrubbed)
SOURCE_COMMIT = "forgetlab.source_commit"  # forgetlab's git commit, when run from a checkout
FAILURE = "forgetlab.failure"  # why a run ended FAILED or KILLED
# MLflow's own tags (mlflow.utils.mlflow_tags), set as `mlflow.start_run` sets them (tracking/context.py).
MLFLOW_USER = "mlflow.user"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_GIT_BRANCH = "mlflow.source.git.branch"
MLFLOW_GIT_REPO_URL = "mlflow.source.git.repoURL"
MLFLOW_RUN_NOTE = "mlflow.note.content"  # the run's one-line description in the UI
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
# The role of a dataset input of a run (MLflow's input tag `mlflow.data.context`; tracking/datasets.py).
DATASET_CONTEXT = "mlflow.data.context"
# Fit runs: what they were fitted to (tracking/fits.py).
SOURCE_EXPERIMENTS = "forgetlab.source_experiments"  # names of the experiments the fitted runs are in, comma-joined
SWEEP_PARENT = "forgetlab.sweep_parent"  # the sweep parent run shared by every fitted run
POINTS_DIGEST = "forgetlab.points_digest"  # sha256 of the fitted points (run, rank, P, N, L_ft, L_f)
# Ownership of a RUNNING run: which process writes it, and when it last wrote (written by tracking/run.py,
# read by tracking/liveness.py).
HOST = "forgetlab.host"
PID = "forgetlab.pid"
HEARTBEAT_MS = "forgetlab.heartbeat_ms"
# Sweeps (sweep_runner.py, sweep.py).
SWEEP = "forgetlab.sweep"
SWEEP_FILE = "forgetlab.sweep_file"
POINT = "forgetlab.point"

# Measured once per run, logged at step 0 (absent when unknown): held-out loss of the base (embedded bases only).
BASE_HELDOUT_LOSS = "base.heldout_loss"
RUN_METRICS: tuple[str, ...] = (BASE_HELDOUT_LOSS,)

# Throughput of the training updates since the last evaluation (throughput.py), at every evaluation step
# after 0: tokens/s, seconds per update, peak RSS; peak GPU memory allocated on a GPU.
THROUGHPUT_METRICS: tuple[str, ...] = ("tokens_per_s", "step_time_s", "peak_rss_mb", "gpu_peak_allocated_mb")

# MLflow's system-metrics sampler (tracking.system_metrics) logs its keys under this prefix, every 10 s of a
# run: how many a run gets depends on how long it ran, so nothing may expect them or their absence.
SYSTEM_METRIC_PREFIX = "system/"

# Processes Lightning launches for the other devices learn the run id from this variable.
RUN_ID_ENV = "FORGETLAB_RUN_ID"

# On the forgetting text, every evaluation (forgetting.py: batch_forgetting_sums).
FORGETTING_METRICS: tuple[str, ...] = ("forget_hard", "forget_soft", "forget_kl", "forget_data", "forget_agree")

# Only when that mitigation's penalty is on (mitigations.py); means over the updates since the last evaluation.
PENALTY_METRICS: tuple[str, ...] = ("penalty_kl", "penalty_l2")

# Only when that probe is configured (probes/); NULL in the warehouse at steps a probe did not run.
MULTIPLE_CHOICE_METRICS: tuple[str, ...] = ("probe_mc_acc", "probe_mc_acc_norm", "probe_mc_agree", "probe_mc_agree_norm")
REFUSAL_METRICS: tuple[str, ...] = ("probe_refusal_rate", "probe_refusal_lost")

# One column each in the warehouse's `curves` view, in this order.
CURVE_METRICS: tuple[str, ...] = (
    "train_loss",
    "ft_loss",
    *FORGETTING_METRICS,
    "lr",
    *PENALTY_METRICS,
    *MULTIPLE_CHOICE_METRICS,
    *REFUSAL_METRICS,
)
