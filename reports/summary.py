"""One row per (method, task, template, model): the latest finished run of an experiment, read from MLflow.

Columns: zero-shot dev (the dev score logged at step 0), best dev, test at the best-dev
checkpoint, training steps/s, peak memory. Written as Markdown and CSV under `out`.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.core.names import column
from benchmark.core.store import client, require_experiment

COLUMNS = {
    "tags.method": "method", "tags.task": "task", "tags.template": "template", "tags.model": "model",
    "params.steps": "steps",
    "dev@0": "dev@0", column(names.DEV_BEST): "dev", column(names.TEST_SCORE): "test",
    column(names.STEPS_PER_S): "steps/s", column(names.PEAK_MEMORY): "peak GB",
    column(names.TRAIN_HOURS): "train h", "tags.device": "device",
}


def load_runs(experiment: str) -> pd.DataFrame:
    import mlflow

    require_experiment(experiment, "run it first")
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if column(names.DEV_BEST) in runs:  # a study's parent runs hold no scores of their own
        runs = runs[runs[column(names.DEV_BEST)].notna()]
    if runs.empty:
        raise BenchmarkError(f"experiment {experiment!r} has no finished runs yet")
    keys = [k for k in ("tags.method", "tags.task", "tags.template", "tags.model") if k in runs.columns]
    runs = runs.drop_duplicates(keys, keep="first")
    store = client()
    runs["dev@0"] = [
        next((m.value for m in store.get_metric_history(rid, names.DEV_SCORE) if m.step == 0), float("nan"))
        for rid in runs["run_id"]
    ]
    return runs


def table(runs: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in COLUMNS if c in runs.columns]
    out = runs[cols].rename(columns=COLUMNS)
    out = out.sort_values([c for c in ("task", "model", "method") if c in out]).reset_index(drop=True)
    if "train h" in out:
        out["train min"] = out.pop("train h") * 60
    return out


def to_markdown(df: pd.DataFrame) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def report(experiment: str, out: str) -> str:
    df = table(load_runs(experiment))
    folder = Path(out) / experiment
    folder.mkdir(parents=True, exist_ok=True)
    md = to_markdown(df)
    (folder / "summary.md").write_text(md + "\n")
    df.to_csv(folder / "summary.csv", index=False)
    return md
