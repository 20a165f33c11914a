"""The claims report's figures, from run records: dev curves with seed bands (the paper's Figure 2),
steps to MeZO's target per seed (Figure 4), and drift per layer for FT, MeZO and DiZO (Figure 1)."""
from __future__ import annotations

from pathlib import Path

from benchmark.core import names, records
from reports.claims import DIZO, FT, HIZOO, MEZO, ROLES, ZERO_SHOT, ablations, last_drift, to_target
from reports.runs import Runs
from reports.figures import _pyplot, _save
from reports.stats import interval

def curve_rows() -> tuple[str, ...]:
    return (MEZO, DIZO, HIZOO, *ablations(), FT)


def dev_curves(runs: Runs, folder: Path) -> list[Path]:
    """Mean dev accuracy over seeds per row, with the 95% interval as a band; zero-shot as a line."""
    fig, ax = _pyplot().subplots(figsize=(7, 4))
    for row in curve_rows():
        curves = [records.curve(r) for r in runs.seeds(row).values()]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(s) for s, _ in curves)))
        at = [dict(zip(*c)) for c in curves]
        ivs = [interval([a[s] for a in at]) for s in steps]
        line, = ax.plot(steps, [iv.mean for iv in ivs], label=f"{row} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(steps, [iv.lo for iv in ivs], [iv.hi for iv in ivs], color=line.get_color(), alpha=0.15)
    zero = runs.metric(ZERO_SHOT, names.DEV_BEST)
    if zero:
        ax.axhline(sum(zero.values()) / len(zero), color="gray", linestyle=":", label="zero-shot")
    lo, hi = ax.get_ylim()  # a t band over 2-3 seeds can reach past what an accuracy can be
    ax.set_ylim(max(lo, 0.0), min(hi, 1.0))
    ax.set(xlabel="step", ylabel="dev accuracy", title="dev accuracy, mean over seeds (band: 95% interval)")
    ax.legend(fontsize=7)
    return _save(fig, folder, "claims_dev_curves")


def steps_to_target(runs: Runs, folder: Path) -> list[Path]:
    """Per seed, the steps MeZO and DiZO need to reach 99% of that seed's MeZO best dev, joined by a line."""
    mezo, dizo = runs.seeds(MEZO), runs.seeds(DIZO)
    per_seed = {s: to_target(mezo[s], dizo[s]) for s in sorted(set(mezo) & set(dizo))}
    if not per_seed:
        return []
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    at: dict[int, list[str]] = {}  # one label per DiZO step count: seeds that end together share it
    for s, c in per_seed.items():
        ax.plot([0, 1], [c["mezo"], c["dizo"]], "o-", color="tab:gray", alpha=0.6, markevery=[0])
        ax.plot([1], [c["dizo"]], "o", color="tab:gray", alpha=0.6,  # hollow: never reached, counted one past
                markerfacecolor="tab:gray" if c["dizo_reached"] else "white")
        at.setdefault(c["dizo"], []).append(str(s) if c["dizo_reached"] else f"{s} (not reached)")
    for steps, seeds in at.items():
        ax.annotate(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}", (1.03, steps), fontsize=7)
    for x, key in ((0, "mezo"), (1, "dizo")):
        mean = sum(c[key] for c in per_seed.values()) / len(per_seed)
        ax.plot([x - 0.15, x + 0.15], [mean, mean], color="tab:red", linewidth=2)
    ax.set_xticks([0, 1], [MEZO, DIZO])
    ax.set(xlim=(-0.4, 1.4), ylabel="steps to 99% of MeZO's best dev (red: mean)",
           title="steps to MeZO's target, per seed")
    return _save(fig, folder, "claims_steps_to_target")


def drift(runs: Runs, folder: Path) -> list[Path]:
    """||theta - theta0|| per layer at the last evaluation, q and v projections, lowest seed of each row."""
    rows = [row for row in (FT, MEZO, DIZO) if runs.seeds(row)]
    if not rows:
        return []
    fig, axes = _pyplot().subplots(1, len(rows), figsize=(4.2 * len(rows), 3.2), squeeze=False)
    for ax, row in zip(axes[0], rows):
        seed, rec = min(runs.seeds(row).items())
        for role in ROLES:
            points = last_drift(rec, role)
            if points:
                ax.plot([n for n, _ in points], [v for _, v in points], marker=".", label=role.upper())
        ax.set(title=f"{row}, seed {seed}", xlabel="layer", ylabel="||theta - theta0||")
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.set_title(f"{row}: no drift logged")
    return _save(fig, folder, "claims_drift")


def write_figures(runs: Runs, folder: Path) -> list[Path]:
    return [p for draw in (dev_curves, steps_to_target, drift) for p in draw(runs, folder)]
