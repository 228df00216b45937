"""The name of every tag, metric and artifact forgetlab writes to MLflow, in one torch-free place.

Tags (`forgetlab.*`) say what a run is and who owns it; the warehouse, the sweep and `--resume`
read them. Metrics are logged under these names by the code that computes them (finetune/curves.py,
finetune/forgetting.py, finetune/training.py, finetune/throughput.py, probes/) and read under the
same names by the warehouse's `curves` pivot (warehouse/schema.py, which must not import torch),
the run summary (commands/run.py) and the UI's saved view (mlflow_ui.py). A real-run test
(tests/test_probes.py) checks that every key a run logs is named here.
Definitions: docs/runs.md, "What a run measures"; the contract: docs/tracking-contract.md.
"""

from __future__ import annotations

# -- tags ---------------------------------------------------------------------------------------

# Tags on every forgetlab run (docs/tracking-contract.md).
KIND = "forgetlab.kind"  # "run", "sweep", "fit" or "plot"
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
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"  # nests a sweep's points (and a fit of them) under the sweep's run
# MLflow's experiment tags that its UI reads (mlflow_ui.py): the experiment's kind, and saved views by key.
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"
MLFLOW_SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
# The role of a dataset input of a run (MLflow's input tag `mlflow.data.context`; tracking/dataset_inputs.py).
DATASET_CONTEXT = "mlflow.data.context"
# Fit runs: what they were fitted to (tracking/fits.py).
SOURCE_EXPERIMENTS = "forgetlab.source_experiments"  # names of the experiments the fitted runs are in, comma-joined
SWEEP_PARENT = "forgetlab.sweep_parent"  # the sweep parent run shared by every fitted run
POINTS_DIGEST = "forgetlab.points_digest"  # sha256 of the fitted points (run, rank, P, N, L_ft, L_f)
FIT_LINK_PREFIX = "forgetlab.fit."  # on a sweep's run: forgetlab.fit.<fit run name> = the fit's run id
# Fit runs: which law, and how the fit went (laws/store.py); the UI's view shows the first three.
LAW = "forgetlab.law"
VARIANT = "forgetlab.variant"  # the forgetting metric fitted (hard, soft, kl, ...)
FIT_STATUS = "forgetlab.status"
IDENTIFIED = "forgetlab.identified"  # "true" / "false"
FIT_GROUP = "forgetlab.fit_group"
FIT_BY = "forgetlab.by"  # `forgetlab fit --by`: the column the runs were grouped by ...
FIT_BY_VALUE = "forgetlab.by_value"  # ... and this fit's group
# Plot runs (plot.py): the query the plotted curves came from.
PLOT_QUERY = "forgetlab.query"
# Ownership of a RUNNING run: which process writes it, and when it last wrote (written by tracking/tracker.py,
# read by tracking/liveness.py).
HOST = "forgetlab.host"
PID = "forgetlab.pid"
HEARTBEAT_MS = "forgetlab.heartbeat_ms"
# Sweeps (sweeps/orchestrate.py on the sweep's run, sweeps/launcher.py on each point's run).
SWEEP = "forgetlab.sweep"
SWEEP_FILE = "forgetlab.sweep_file"
POINT = "forgetlab.point"

# Processes Lightning launches for the other devices learn the run id from this variable.
RUN_ID_ENV = "FORGETLAB_RUN_ID"

# -- metrics ------------------------------------------------------------------------------------

# Measured once per run, logged at step 0 (absent when unknown): held-out loss of the base (embedded bases only).
BASE_HELDOUT_LOSS = "base.heldout_loss"
RUN_METRICS: tuple[str, ...] = (BASE_HELDOUT_LOSS,)

# Every evaluation (finetune/curves.py): training loss since the last evaluation, L_ft, the learning rate.
TRAIN_LOSS = "train_loss"
FT_LOSS = "ft_loss"
LR = "lr"

# On the forgetting text, every evaluation (finetune/forgetting.py: batch_forgetting_sums).
FORGET_HARD = "forget_hard"
FORGET_SOFT = "forget_soft"
FORGET_KL = "forget_kl"
FORGET_DATA = "forget_data"
FORGET_AGREE = "forget_agree"
FORGETTING_METRICS: tuple[str, ...] = (FORGET_HARD, FORGET_SOFT, FORGET_KL, FORGET_DATA, FORGET_AGREE)

# Only when that mitigation's penalty is on (finetune/mitigations.py); means over the updates since the last evaluation.
PENALTY_KL = "penalty_kl"
PENALTY_L2 = "penalty_l2"
PENALTY_METRICS: tuple[str, ...] = (PENALTY_KL, PENALTY_L2)

# Only when that probe is configured (probes/); NULL in the warehouse at steps a probe did not run.
PROBE_MC_ACC = "probe_mc_acc"
PROBE_MC_ACC_NORM = "probe_mc_acc_norm"
PROBE_MC_AGREE = "probe_mc_agree"
PROBE_MC_AGREE_NORM = "probe_mc_agree_norm"
MULTIPLE_CHOICE_METRICS: tuple[str, ...] = (PROBE_MC_ACC, PROBE_MC_ACC_NORM, PROBE_MC_AGREE, PROBE_MC_AGREE_NORM)
PROBE_REFUSAL_RATE = "probe_refusal_rate"
PROBE_REFUSAL_LOST = "probe_refusal_lost"
REFUSAL_METRICS: tuple[str, ...] = (PROBE_REFUSAL_RATE, PROBE_REFUSAL_LOST)

# One column each in the warehouse's `curves` view, in this order.
CURVE_METRICS: tuple[str, ...] = (
    TRAIN_LOSS,
    FT_LOSS,
    *FORGETTING_METRICS,
    LR,
    *PENALTY_METRICS,
    *MULTIPLE_CHOICE_METRICS,
    *REFUSAL_METRICS,
)

# Throughput of the training updates since the last evaluation (finetune/throughput.py), at every evaluation
# step after 0: tokens/s, seconds per update, peak RSS; peak GPU memory allocated on a GPU.
TOKENS_PER_S = "tokens_per_s"
STEP_TIME_S = "step_time_s"
PEAK_RSS_MB = "peak_rss_mb"
GPU_PEAK_ALLOCATED_MB = "gpu_peak_allocated_mb"
THROUGHPUT_METRICS: tuple[str, ...] = (TOKENS_PER_S, STEP_TIME_S, PEAK_RSS_MB, GPU_PEAK_ALLOCATED_MB)

# MLflow's system-metrics sampler (tracking.system_metrics) logs its keys under this prefix, every 10 s of a
# run: how many a run gets depends on how long it ran, so nothing may expect them or their absence.
SYSTEM_METRIC_PREFIX = "system/"

# -- artifacts ----------------------------------------------------------------------------------

CONFIG_ARTIFACT = "config.yaml"  # a run's resolved config: written by finetune/recipe.py, read by `run --resume`
SWEEP_ARTIFACT = "sweep.json"  # the validated sweep file, on the sweep's run (sweeps/orchestrate.py)
FIT_ARTIFACT = "fit.json"  # a fit's result (laws/store.py writes it, `forgetlab predict` reads it back)
FIT_QUERY_ARTIFACT = "query.sql"  # the SQL a fit's points came from, when they came from a query
# The probes' artifacts (probes/): per-step details of each answer, for a person to check; the samples as an
# MLflow table (one row per prompt); the wall time spent in each probe.
MULTIPLE_CHOICE_ARTIFACT = "probes/multiple_choice_step{step}.json"
REFUSAL_ARTIFACT = "probes/refusal_step{step}.json"
SAMPLES_TABLE = "probes/samples.json"
PROBE_TIMING_ARTIFACT = "probes/timing.json"
