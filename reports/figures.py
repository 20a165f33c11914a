"""The paper's figures from a study's final runs (seed 0 of each cell), as PNG and PDF.

Figure 1: layer-wise ||theta_t - theta_0|| per attention projection, FT vs MeZO (runs with
`log_drift`). Figure 2: training-loss curves, MeZO vs DiZO, one panel per task. Figure 4:
iterations, forward passes and hours to the target dev score, DiZO as % of MeZO per task.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.tracking import tracking_uri
from reports.convergence import TARGET_DEFINITION, Curve, relative


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


def seed0_runs(experiment: str, preset: str) -> pd.DataFrame:
    """The first-seed final run of every (task, row): the curves the figures draw."""
    from reports.tables import search_final

    runs = search_final(experiment, preset)
    if runs.empty:
        return runs
    runs["seed"] = runs["params.seed"].astype(int)
    return runs.sort_values("seed").drop_duplicates(["tags.task", "tags.row"], keep="first")


def history(run_id: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted((m.step, m.value) for m in _client().get_metric_history(run_id, key))
    return [s for s, _ in points], [v for _, v in points]


def curve(run: pd.Series) -> Curve | None:
    """The run's dev curve and throughput; None when it has no training measurements (zero-shot)."""
    rate, forwards = run.get("metrics.perf/steps_per_s"), run.get("metrics.perf/forward_passes")
    if rate is None or forwards is None or rate != rate or forwards != forwards or rate <= 0:
        return None
    steps, dev = history(run["run_id"], "eval/dev_score")
    return Curve(steps, dev, float(rate), float(forwards) / max(int(run.get("params.steps") or 1), 1))


def _save(fig, folder: Path, name: str) -> list[Path]:
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    return paths


def _smooth(values: list[float], window: int = 10) -> list[float]:
    return pd.Series(values).rolling(window, min_periods=1).mean().tolist()


def figure2_loss(runs: pd.DataFrame, folder: Path, rows: tuple[str, str] = ("MeZO", "DiZO")) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(set(runs["tags.task"]))
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(4 * max(len(tasks), 1), 3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for label in rows:
            match = runs[(runs["tags.task"] == task) & (runs["tags.row"] == label)]
            if not match.empty:
                steps, loss = history(match.iloc[0]["run_id"], "train/loss")
                ax.plot(steps, _smooth(loss), label=label)
        ax.set(title=task, xlabel="step", ylabel="training loss (moving mean of 10)")
        if ax.lines:
            ax.legend()
    return _save(fig, folder, "figure2_loss")


def figure4_convergence(runs: pd.DataFrame, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = []
    for task in sorted(set(runs["tags.task"])):
        by_row = {r["tags.row"]: r for _, r in runs[runs["tags.task"] == task].iterrows()}
        curves = {label: curve(by_row[label]) for label in ("MeZO", "DiZO") if label in by_row}
        if curves.get("MeZO") and curves.get("DiZO"):
            records.append((task, relative(curves["DiZO"], curves["MeZO"])))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for ax, key, title in zip(axes, ("train_iter_pct", "forward_pct", "gpu_hours_pct"),
                              ("iterations", "forward passes", "train hours")):
        names = [t for t, _ in records]
        values = [r[key] if r[key] is not None else 0.0 for _, r in records]
        ax.bar(names, [100.0] * len(names), color="lightgray", label="MeZO")
        ax.bar(names, values, color="tab:blue", width=0.5, label="DiZO")
        for i, (_, r) in enumerate(records):
            ax.text(i, 102, "not reached" if r[key] is None else f"{100 - r[key]:.0f}% saved", ha="center", fontsize=8)
        ax.set(title=f"{title} to target (% of MeZO)", ylim=(0, 130))
        ax.legend(fontsize=8)
    fig.text(0, -0.08, TARGET_DEFINITION, fontsize=7)
    return _save(fig, folder, "figure4_convergence")


_DRIFT = re.compile(r"^drift/(\w+)/(\d+)$")


def figure1_drift(runs: pd.DataFrame, folder: Path, rows: tuple[str, str] = ("FT", "MeZO")) -> list[Path]:
    """Distance to the pre-trained weights per layer and projection at a few points of training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3), squeeze=False)
    for ax, label in zip(axes[0], rows):
        match = runs[runs["tags.row"] == label]
        keys = sorted((k.removeprefix("metrics."), _DRIFT.match(k.removeprefix("metrics.")))
                      for k in match.columns if _DRIFT.match(k.removeprefix("metrics.")))
        if match.empty or not keys:
            ax.set_title(f"{label}: no drift logged (set log_drift=true)")
            continue
        keys.sort(key=lambda kv: (int(kv[1].group(2)), "qkvo".index(kv[1].group(1))))
        series = {k: history(match.iloc[0]["run_id"], k) for k, _ in keys}
        steps = series[keys[0][0]][0]
        for pick in sorted({steps[len(steps) // 4], steps[len(steps) // 2], steps[-1]} - {0}):
            ax.plot(range(len(keys)), [dict(zip(*series[k]))[pick] for k, _ in keys], label=f"step {pick}")
        ax.set_xticks(range(len(keys)), [f"{m.group(1).upper()}{m.group(2)}" for _, m in keys], rotation=90, fontsize=5)
        ax.set(title=f"{label}: ||theta_t - theta_0|| by layer", ylabel="distance")
        ax.legend(fontsize=8)
    return _save(fig, folder, "figure1_drift")


def write_figures(experiment: str, preset: str, out: Path) -> list[Path]:
    runs = seed0_runs(experiment, preset)
    if runs.empty:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return figure2_loss(runs, out) + figure4_convergence(runs, out) + figure1_drift(runs, out)
