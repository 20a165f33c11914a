"""Every MLflow name that more than one module writes or reads, written once: the naming contract every
report and check reads (step and summary metrics), the method diagnostics the reports draw, the baseline row."""
from __future__ import annotations

import re

# step metrics
TRAIN_LOSS = "train/loss"
DEV_SCORE = "eval/dev_score"  # accuracy or F1 on dev, logged at step 0 (zero-shot) and every evaluation
PROJECTED_GRAD = "train/projected_grad"  # ZO: (loss+ - loss-) / (2 eps)
CURVATURE = "train/curvature"  # HiZOO: |loss+ + loss- - 2 loss0| / (2 eps^2)
MEM_ALLOCATED = "mem/allocated_gb"

# summary metrics: once per finished run
DEV_BEST = "dev/best_score"
DEV_BEST_STEP = "dev/best_step"
TEST_SCORE = "test/score"
TEST_PREFIX = "test/"  # test/score and the task's extra test metrics (test/exact_match)
STEPS_PER_S = "perf/steps_per_s"  # training steps only, evaluation excluded
PEAK_MEMORY = "perf/peak_memory_gb"
AVG_MEMORY = "perf/avg_memory_gb"
TRAIN_HOURS = "perf/train_hours"  # devices x training wall hours: the paper's "GPU hours"
FORWARD_PASSES = "perf/forward_passes"
WALL_S = "perf/wall_s"  # the whole run, evaluation included (a resumed run: every part, not the time it lay dead)
SEED_LOG_BYTES = "perf/seed_log_bytes"  # the size of a ZO run's seed log (its `seed_log.jsonl` artifact)
RESUME_S = "perf/resume_s"  # a resumed run: seconds spent rebuilding its state (replaying the log, loading)
CONTRACT = (DEV_BEST, TEST_SCORE, PEAK_MEMORY, AVG_MEMORY, STEPS_PER_S, TRAIN_HOURS, FORWARD_PASSES)

# method diagnostics (logged by methods/dizo.py at each projection round, methods/hizoo.py at each evaluation)
DIZO_RATIO_MEAN, DIZO_RATIO_MIN, DIZO_RATIO_MAX = "dizo/ratio_mean", "dizo/ratio_min", "dizo/ratio_max"
DIZO_RATIO_AT_BOUND = "dizo/ratio_at_bound"  # share of the round's ratios on a clip bound
DIZO_TS_MEAN = "dizo/ts_mean"  # mean ||theta - theta0|| over the projected layers
DIZO_THETA0_ON_DEVICE = "dizo/theta0_on_device"  # CUDA: 1 where theta0 fit on the device, 0 where it lives in host memory
DIZO_LOSS_BEFORE, DIZO_LOSS_AFTER = "dizo/loss_before", "dizo/loss_after"  # the round's last batch
HIZOO_SCALE_MIN, HIZOO_SCALE_MEDIAN, HIZOO_SCALE_MAX = "hizoo/scale_min", "hizoo/scale_median", "hizoo/scale_max"
ZO_STACKED = "zo/stacked"  # CUDA: 1 where every score ran its variants as one stacked forward, 0 where one did not fit (decided once a run)
DRIFT = "drift/{role}/{layer}"  # ||theta_t - theta_0|| of one projection (log_drift)
DRIFT_KEY = re.compile("^" + DRIFT.format(role=r"(\w+)", layer=r"(\d+)") + "$")  # groups: role, layer

# the row every convergence figure and percentage is relative to (the paper's), and the one set against it
BASELINE_ROW = "MeZO"
DIZO_ROW = "DiZO"


def column(metric: str) -> str:
    """The metric's column in `mlflow.search_runs`' DataFrame."""
    return f"metrics.{metric}"
