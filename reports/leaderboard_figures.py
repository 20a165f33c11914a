"""The leaderboard's figures, from run records and the committed `benchmark perf` repeats: test accuracy
against peak memory and against training time with the Pareto front marked (`leaderboard_pareto`), and
each row's dev curve with its seed band beside MeZO's (`leaderboard_dev_curves`)."""
from __future__ import annotations

import math
from pathlib import Path

from benchmark.core import records
from reports.figures import _pyplot, _save
from reports.leaderboard import MEZO, Line, rows
from reports.runs import Runs
from reports.stats import interval


def front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto front of (cost, accuracy) points: none costs less and scores more; ties in cost
    keep the best. Ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    out, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            out.append(i)
            best = points[i][1]
    return out


def spread_labels(points: list[tuple[float, float]], near: float, gap: float) -> list[float]:
    """The height of each point's label (written to the point's right, about `near` wide) so that it stays
    at least `gap` from the labels of points within `near` across and from the other points it would cover:
    from the lowest point up, each label rises just above what it would overlap."""
    placed: list[tuple[float, float]] = []
    heights = [0.0] * len(points)
    for i in sorted(range(len(points)), key=lambda i: points[i][1]):
        x, y = points[i]
        covered = [py for j, (px, py) in enumerate(points) if j != i and 0 <= px - x < near]
        # (a label just moved sits `gap` above what it cleared, give or take rounding: not a clash)
        others = [h for px, h in placed if abs(px - x) < near] + covered
        while clash := [h for h in others if abs(h - y) < gap * (1 - 1e-9)]:
            y = max(clash) + gap
        heights[i] = y
        placed.append((x, y))
    return heights


def pareto(found: list[Line], folder: Path) -> list[Path]:
    """Test accuracy (mean, 95% interval as a bar) against peak memory and against the hours the run's steps
    take at `benchmark perf`'s rate (a log axis: FZOO's hour would crowd the others' tenths into a corner);
    the front joined by a line and its rows named in bold, each name on a white ground so no bar strikes
    it through, and the legend below the panels where it hides no point."""
    axes_of = (("peak memory, GB (benchmark perf)", lambda ln: ln.peak_gb.mean, "linear"),
               ("training hours for the run's steps (benchmark perf's s/step; log scale)", lambda ln: ln.train_h.mean,
                "log"))
    drawn = [ln for ln in found if ln.test.n and ln.peak_gb.n]
    if not drawn:
        return []
    fig, axes = _pyplot().subplots(1, 2, figsize=(13, 5))
    for ax, (xlabel, cost, scale) in zip(axes, axes_of):
        shown = [ln for ln in drawn if not math.isnan(cost(ln)) and (scale == "linear" or cost(ln) > 0)]
        points = [(cost(ln), ln.test.mean) for ln in shown]
        on_front = front(points)
        ax.set_xscale(scale)
        xs, ys = [x for x, _ in points], [100 * y for _, y in points]
        for i, ln in enumerate(shown):
            err = [[100 * (ln.test.mean - ln.test.lo)], [100 * (ln.test.hi - ln.test.mean)]] if ln.test.n > 1 else None
            ax.errorbar(xs[i], ys[i], yerr=err, fmt="o", color="tab:red" if i in on_front else "tab:gray", capsize=3,
                        markersize=5)
        ax.plot([points[i][0] for i in on_front], [100 * points[i][1] for i in on_front], "-", color="tab:red",
                alpha=0.6, label="Pareto front (less cost, more accuracy)")
        to_axis = math.log10 if scale == "log" else float  # where a label's width is even: the axis's own scale
        lo, hi = (to_axis(v) for v in ax.get_xlim())
        width, height = hi - lo, ax.get_ylim()[1] - ax.get_ylim()[0]  # a 7-point label's size, roughly
        heights = spread_labels([(to_axis(x), y) for x, y in zip(xs, ys)], near=0.1 * width, gap=0.03 * height)
        for i, ln in enumerate(shown):
            right = to_axis(xs[i]) + 0.015 * width
            ax.annotate(ln.label, (xs[i], ys[i]), xytext=(10 ** right if scale == "log" else right, heights[i]),
                        fontsize=7, va="center", fontweight="bold" if i in on_front else "normal", zorder=4,
                        bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if heights[i] != ys[i] else None)
        ax.set(xlabel=xlabel, ylabel="test accuracy, % (mean, 95% interval over seeds)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, -0.04), fontsize=8)
    fig.suptitle("rt-polarity, SmolLM2-135M: accuracy against what it costs")
    return _save(fig, folder, "leaderboard_pareto")


def dev_curves(runs: Runs, folder: Path) -> list[Path]:
    """One panel per row: its mean dev curve over seeds with the 95% band, MeZO's in grey behind it."""
    labels = [label for label, _ in rows() if runs.seeds(label) and label != MEZO and records.curve(
        next(iter(runs.seeds(label).values())))[0][1:]]
    if not labels:
        return []
    cols = 4
    fig, axes = _pyplot().subplots(math.ceil(len(labels) / cols), cols, figsize=(14, 3 * math.ceil(len(labels) / cols)),
                                   squeeze=False, sharey=True)
    mezo = band(runs, MEZO)
    zero = [records.curve(rec)[1][0] for label, method in rows() if method == "zero-shot"
            for rec in runs.seeds(label).values() if records.curve(rec)[1]]
    for ax, label in zip(axes.flat, labels):
        if zero:
            ax.axhline(sum(zero) / len(zero), color="gray", linestyle=":", label="zero-shot")
        if mezo:
            draw(ax, mezo, MEZO, "tab:gray", 0.15)
        draw(ax, band(runs, label), label, "tab:blue", 0.2)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_ylim(0.4, 1.0)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("dev accuracy")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle("dev accuracy, mean over seeds (band: 95% interval; an FO row's 200 steps against MeZO's 650)")
    fig.tight_layout()
    return _save(fig, folder, "leaderboard_dev_curves")


def draw(ax, curve: tuple, label: str, color: str, alpha: float) -> None:
    """A `band`'s mean curve, and its 95% band where it has two seeds or more."""
    steps, mean, lo, hi, n = curve
    ax.plot(steps, mean, color=color, label=f"{label} (n={n})")
    if n > 1:
        ax.fill_between(steps, lo, hi, color=color, alpha=alpha)


def band(runs: Runs, label: str) -> tuple[list[int], list[float], list[float], list[float], int] | None:
    """(steps, mean, lo, hi, seeds) of the row's dev curves at the steps every seed evaluated (one seed: no
    band, lo and hi empty)."""
    curves = [records.curve(rec) for rec in runs.seeds(label).values()]
    curves = [c for c in curves if c[0]]
    if not curves:
        return None
    steps = sorted(set.intersection(*(set(s) for s, _ in curves)))
    at = [dict(zip(*c)) for c in curves]
    ivs = [interval([a[s] for a in at]) for s in steps]
    if len(curves) == 1:
        return steps, [iv.mean for iv in ivs], [], [], 1
    return steps, [iv.mean for iv in ivs], [max(iv.lo, 0.0) for iv in ivs], [min(iv.hi, 1.0) for iv in ivs], len(curves)


def write_figures(runs: Runs, found: list[Line], folder: Path) -> list[Path]:
    return pareto(found, folder) + dev_curves(runs, folder)
