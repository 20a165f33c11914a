"""The paper's figures from a study's final runs, as PNG and PDF; a figure whose rows the experiment
lacks is not drawn.

Figure 1: layer-wise ||theta_t - theta_0|| per attention projection, FT vs MeZO (runs with
`log_drift`). Figure 2: training-loss curves, MeZO vs DiZO, one panel per task, and its companion:
the share of DiZO's ratios on a clip bound at each projection round (a search pinned at 0 or 1 is
not searching). Figure 4:
iterations, forward passes and hours to the target dev score, DiZO as % of MeZO per task.
Figure 5: the re-init / clipping ablation, test scores (left) and loss curves (right).
Optuna views: the objective against each hyperparameter, one slice plot per study.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.core import names
from benchmark.core.names import BASELINE_ROW, DIZO_ROW
from benchmark.experiments import ablation_c2
from reports.convergence import TARGET_DEFINITION, relative
from reports.runs import curve, first_seed, history
from reports.tables import measured

def ablation_rows() -> tuple[str, ...]:
    """The ablation figure's rows, in order (their labels as the experiment writes them)."""
    return BASELINE_ROW, ablation_c2.NO_REINIT.label, ablation_c2.NO_CLIP.label, DIZO_ROW


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in paths:  # no creation date in the PDF: a re-render of the same records is the same bytes
        metadata = {"CreationDate": None} if path.suffix == ".pdf" else None
        fig.savefig(path, bbox_inches="tight", dpi=150, metadata=metadata)
    _pyplot().close(fig)
    return paths


def _smooth(values: list[float], window: int = 10) -> list[float]:
    return pd.Series(values).rolling(window, min_periods=1).mean().tolist()


def _has_rows(runs: pd.DataFrame, rows: tuple[str, ...]) -> bool:
    return set(rows) <= set(runs["row"])


def _loss_panel(ax, runs: pd.DataFrame, task: str, rows: tuple[str, ...]) -> None:
    for label in rows:
        match = runs[(runs["task"] == task) & (runs["row"] == label)]
        if not match.empty:
            steps, loss = history(match.iloc[0], names.TRAIN_LOSS)
            ax.plot(steps, _smooth(loss), label=label)
    ax.set(title=task, xlabel="step", ylabel="training loss (moving mean of 10)")
    if ax.lines:
        ax.legend(fontsize=8)


def figure2_loss(runs: pd.DataFrame, folder: Path, rows: tuple[str, str] = (BASELINE_ROW, DIZO_ROW)) -> list[Path]:
    if not _has_rows(runs, rows):
        return []
    tasks = sorted(set(runs["task"]))
    fig, axes = _pyplot().subplots(1, len(tasks), figsize=(4 * len(tasks), 3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        _loss_panel(ax, runs, task, rows)
    return _save(fig, folder, "figure2_loss")


def figure2_ratio_at_bound(runs: pd.DataFrame, folder: Path) -> list[Path]:
    """Every row whose run logged DiZO's round diagnostics, one panel per task."""
    curves = {(run["task"], run["row"]): history(run, names.DIZO_RATIO_AT_BOUND) for _, run in runs.iterrows()}
    curves = {key: points for key, points in curves.items() if points[0]}
    if not curves:
        return []
    tasks = sorted({task for task, _ in curves})
    fig, axes = _pyplot().subplots(1, len(tasks), figsize=(4 * len(tasks), 3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for (t, label), (steps, share) in sorted(curves.items()):
            if t == task:
                ax.plot(steps, share, marker="o", markersize=3, label=label)
        ax.set(title=task, xlabel="step", ylabel="ratios on a clip bound", ylim=(-0.05, 1.05))
        ax.legend(fontsize=8)
    return _save(fig, folder, "figure2_ratio_at_bound")


def figure4_convergence(runs: pd.DataFrame, folder: Path) -> list[Path]:
    records = []
    for task in sorted(set(runs["task"])):
        by_row = {r["row"]: r for _, r in runs[runs["task"] == task].iterrows()}
        curves = {label: curve(by_row[label]) for label in (BASELINE_ROW, DIZO_ROW) if label in by_row}
        if curves.get(BASELINE_ROW) and curves.get(DIZO_ROW):
            records.append((task, relative(curves[DIZO_ROW], curves[BASELINE_ROW])))
    if not records:
        return []
    fig, axes = _pyplot().subplots(1, 3, figsize=(12, 3))
    for ax, key, title in zip(axes, ("train_iter_pct", "forward_pct", "gpu_hours_pct"),
                              ("iterations", "forward passes", "train hours")):
        tasks = [t for t, _ in records]
        values = [r[key] if r[key] is not None else 0.0 for _, r in records]
        ax.bar(tasks, [100.0] * len(tasks), color="lightgray", label=BASELINE_ROW)
        ax.bar(tasks, values, color="tab:blue", width=0.5, label=DIZO_ROW)
        for i, (_, r) in enumerate(records):
            ax.text(i, 102, "not reached" if r[key] is None else f"{100 - r[key]:.0f}% saved", ha="center", fontsize=8)
        ax.set(title=f"{title} to target (% of {BASELINE_ROW})", ylim=(0, 130))
        ax.legend(fontsize=8)
    fig.text(0, -0.08, TARGET_DEFINITION, fontsize=7)
    return _save(fig, folder, "figure4_convergence")


def figure1_drift(runs: pd.DataFrame, folder: Path, rows: tuple[str, str] = ("FT", BASELINE_ROW)) -> list[Path]:
    """Distance to the pre-trained weights per layer, a line per attention projection, at the last
    logged step (solid) and halfway (dashed); the first task's runs."""
    if not _has_rows(runs, rows):
        return []
    runs = runs[runs["task"] == sorted(set(runs["task"]))[0]]
    fig, axes = _pyplot().subplots(1, 2, figsize=(11, 3.2), squeeze=False)
    for ax, label in zip(axes[0], rows):
        match = runs[runs["row"] == label]
        keys = {k.removeprefix("metrics."): names.DRIFT_KEY.match(k.removeprefix("metrics.")) for k in match.columns}
        keys = {k: m for k, m in keys.items() if m}
        if match.empty or not keys:
            ax.set_title(f"{label}: no drift logged (set log_drift=true)")
            continue
        series = {k: dict(zip(*history(match.iloc[0], k))) for k in keys}
        steps = sorted(next(iter(series.values())))
        for role in sorted({m.group(1) for m in keys.values()}, key="qkvo".find):
            layers = sorted((int(m.group(2)), k) for k, m in keys.items() if m.group(1) == role)
            line, = ax.plot([n for n, _ in layers], [series[k].get(steps[-1], float("nan")) for _, k in layers],
                            label=f"{role.upper()} (step {steps[-1]})")
            ax.plot([n for n, _ in layers], [series[k].get(steps[len(steps) // 2], float("nan")) for _, k in layers],
                    "--", color=line.get_color(), alpha=0.5)
        ax.set(title=f"{label} on {match.iloc[0]['task']}: ||theta_t - theta_0|| (dashed: step {steps[len(steps) // 2]})",
               xlabel="layer", ylabel="distance")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return _save(fig, folder, "figure1_drift")


def figure5_ablation(all_runs: pd.DataFrame, folder: Path) -> list[Path]:
    """Left: test score per task for each ablation row (mean over seeds). Right: their loss curves on
    the first task (first seed)."""
    if not _has_rows(all_runs, ablation_rows()):
        return []
    tests = measured(all_runs, "test")
    tasks = sorted(set(all_runs["task"]))
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(11, 3.2))
    width = 0.8 / len(ablation_rows())
    for i, label in enumerate(ablation_rows()):
        xs = [j + (i - (len(ablation_rows()) - 1) / 2) * width for j in range(len(tasks))]
        left.bar(xs, [tests[(label, t)].mean if (label, t) in tests else 0.0 for t in tasks], width, label=label)
    left.set_xticks(range(len(tasks)), tasks)
    top = max((v.mean for v in tests.values()), default=100.0)
    left.set(title="ablation: test score (mean over seeds)", ylabel="test x 100", ylim=(0, top * 1.3))
    left.legend(fontsize=7, ncol=2, loc="upper center")
    _loss_panel(right, first_seed(all_runs), tasks[0], ablation_rows())
    return _save(fig, folder, "figure5_ablation")


def optuna_views(studies: list[Any], folder: Path) -> list[Path]:
    """One slice plot (objective vs each hyperparameter) per study with completed trials that vary
    something; a single-point grid has nothing to show."""
    import optuna

    written = []
    for study in studies:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        varied = {k for k in {k for t in done for k in t.params} if len({str(t.params.get(k)) for t in done}) > 1}
        if not varied:
            continue
        # rc_context: optuna switches pyplot to its own style globally; keep it to these plots
        with warnings.catch_warnings(), _pyplot().rc_context():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib views experimental
            axes = optuna.visualization.matplotlib.plot_slice(study, params=sorted(varied))
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        first.set_ylabel("dev score (objective)")
        fig = first.figure
        fig.suptitle(study.study_name, fontsize=8)
        written += _save(fig, folder, re.sub(r"[^\w.-]+", "_", study.study_name))
    return written


def write_figures(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure the runs have rows for, under `out`."""
    if runs.empty:
        return []
    first = first_seed(runs)
    return (figure1_drift(first, out) + figure2_loss(first, out) + figure2_ratio_at_bound(first, out)
            + figure4_convergence(first, out)
            + figure5_ablation(runs, out))
