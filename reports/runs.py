"""What reports read from MLflow: a study's final runs, metric histories and dev curves.

Final runs carry the tag `final=true` (each cell's best-dev configuration, one run per seed); the
columns added here (task, row, seed, model, preset) name them the way tables and figures group them.
"""
from __future__ import annotations

import math

import pandas as pd

from benchmark.core import names
from benchmark.core.names import column
from benchmark.core.store import client, require_experiment
from reports.convergence import Curve

NAMES = {"tags.task": "task", "tags.row": "row", "tags.model": "model", "tags.preset": "preset"}


def final_runs(experiment: str, preset: str | None = None) -> pd.DataFrame:
    """MLflow's rows for the finished final runs of a study (all presets unless one is named), plus
    task, row, seed, model and preset columns; empty (with those columns) when there are none."""
    import mlflow

    require_experiment(experiment, f"run make reproduce-{experiment} first")
    where = "attributes.status = 'FINISHED' and tags.final = 'true'"
    if preset:
        where += f" and tags.preset = '{preset}'"
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=where)
    if runs.empty:
        return pd.DataFrame(columns=["run_id", "seed", *NAMES.values()])
    runs = runs.rename(columns=NAMES)
    runs["seed"] = runs["params.seed"].astype(int)
    return runs.sort_values(["task", "row", "seed"]).reset_index(drop=True)


def first_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """The lowest-seed run of every (task, row): the curves the figures draw."""
    return runs.sort_values("seed").drop_duplicates(["task", "row"], keep="first")


def history(run_id: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted((m.step, m.value) for m in client().get_metric_history(run_id, key))
    return [s for s, _ in points], [v for _, v in points]


def curve(run: pd.Series) -> Curve | None:
    """The run's dev curve and throughput; None when it has no training measurements (zero-shot)."""
    rate, forwards = run.get(column(names.STEPS_PER_S)), run.get(column(names.FORWARD_PASSES))
    if rate is None or forwards is None or math.isnan(rate) or math.isnan(forwards) or rate <= 0:
        return None
    steps, dev = history(run["run_id"], names.DEV_SCORE)
    if not steps:
        return None
    return Curve(steps, dev, float(rate), float(forwards) / max(int(run.get("params.steps") or 1), 1))
