"""What every study page (`reports.claims`, `reports.leaderboard`) shows the same way: the seed-0 search,
the wall time per phase, the MeZO/DiZO pairs' spread, and where a run reaches a dev target. Written once
here so the two pages cannot drift apart.
"""
from __future__ import annotations

import math

from benchmark.core import names, records
from reports import convergence
from reports.runs import Runs
from reports.stats import Interval, interval, paired

MEZO, DIZO = names.BASELINE_ROW, names.DIZO_ROW
GRID_KEYS = ("lr", "eps", "projection_interval", "clip_range", "hessian_smooth", "batch_size")


def point(params: dict, keys: list[str] | tuple[str, ...]) -> str:
    """`k=v, ...` of the `keys` a run's params have ("-" when none)."""
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params) or "-"


def censored(rec: dict) -> int:
    """Where a run that never reached a target is counted: one evaluation past its last."""
    return int(rec["params"]["steps"]) + int(rec["params"]["eval_every"])


def dev_curve(rec: dict) -> convergence.Curve:
    """The record's dev curve as the paper tables' convergence columns read one (rate NaN where not measured)."""
    steps, dev = records.curve(rec)
    summary = rec["summary"]
    return convergence.Curve(steps, dev, summary.get(names.STEPS_PER_S) or math.nan,
                             summary.get(names.FORWARD_PASSES, 0) / max(int(rec["params"]["steps"]), 1))


def target_of(rec: dict) -> float:
    """A run's target: 99% of its best dev after step 0 (`reports.convergence.target`)."""
    return convergence.target(dev_curve(rec))


def steps_to(rec: dict, goal: float) -> tuple[int, bool]:
    """The steps the run needs to reach `goal` on dev, and whether it did (a miss counts as `censored`)."""
    reached = dev_curve(rec).steps_to(goal)
    return (reached, True) if reached is not None else (censored(rec), False)


def search_table(runs: Runs) -> str:
    """Every seed-0 grid point per row (the settings its grid varies), its dev and test, and which was chosen."""
    lines = ["| row | point | dev (best) | at step | test | wall min | chosen |", "|---|---|---|---|---|---|---|"]
    for row, recs in runs.search.items():
        keys = [k for k in GRID_KEYS if len({r["params"].get(k) for r in recs}) > 1] or ["lr"]
        for rec in recs:
            s = rec["summary"]
            lines.append(f"| {row} | {point(rec['params'], keys)} | {s.get(names.DEV_BEST, math.nan):.3f} | "
                         f"{s.get(names.DEV_BEST_STEP, math.nan):.0f} | {s.get(names.TEST_SCORE, math.nan):.3f} | "
                         f"{s.get(names.WALL_S, math.nan) / 60:.1f} | {'yes' if rec['tags'].get('final') == 'true' else ''} |")
    return "\n".join(lines)


def busy_hours(recs: list[dict]) -> float:
    """The hours in which at least one of the runs was running: the union of their spans (start to start +
    wall), what the machine gave them when several ran side by side; pauses between sittings do not count."""
    spans = sorted((r["start_time"] / 1000, r["start_time"] / 1000 + r["summary"].get(names.WALL_S, 0))
                   for r in recs if r.get("start_time") is not None)
    total, end = 0.0, -math.inf
    for start, stop in spans:
        if stop > end:
            total, end = total + stop - max(start, end), stop
    return total / 3600


def wall_lines(runs: Runs, how: str = "") -> list[str]:
    """Per phase (pilot where the study has one, search, finals) and in all: the runs' wall time summed and
    the machine's (`busy_hours`); they differ where runs ran side by side."""
    search = [r for recs in runs.search.values() for r in recs]
    finals = [r for row in runs.finals.values() for r in row.values() if r["tags"]["study"].endswith("/final")]
    phases = ([("pilot", [runs.pilot])] if runs.pilot else []) + \
        [("search (seed 0, every grid point)", search), ("finals (other seeds)", finals)]
    phases.append(("total", [r for _, recs in phases for r in recs]))
    return [f"- {label}: {sum(r['summary'].get(names.WALL_S, 0) for r in recs) / 3600:.2f} h of runs, "
            f"{busy_hours(recs):.2f} h of the machine's" for label, recs in phases] + cpu_lines(phases[-1][1]) + \
        [f"- runs' wall time, evaluation included{how}; the machine's: the hours in which any of them ran"]


def _one_per_pair(pairs: list[tuple[int, dict, dict]], tag: str, what: str) -> str:
    """Whether both members of each pair ran with one value of `tag` (seeds where they did not, or where a
    member's run predates the tag)."""
    untagged = [s for s, a, b in pairs if tag not in a["tags"] or tag not in b["tags"]]
    split = [s for s, a, b in pairs if s not in untagged and a["tags"][tag] != b["tags"][tag]]
    return ", ".join(([f"{tag} not recorded for seeds {untagged} (runs before the `{tag}` tag)"] if untagged else []) +
                     ([f"{len(split)} pair(s) ran on different values of {tag}: seeds {split}"] if split else [])) \
        or f"every pair ran on one {tag} (`{tag}` tag: {what})"


def cpu_lines(recs: list[dict]) -> list[str]:
    """The runs' hours per CPU (`cpu` tag; a run carried to another machine mid-way, `carried_cpu`, counts
    under both): a study resumed on another machine mixes CPUs, and its times only compare within one."""
    by_cpu: dict[str, list[dict]] = {}
    for rec in recs:
        tags = rec["tags"]
        where = "CPU not recorded (runs before the `cpu` tag)" if "cpu" not in tags else \
            f"on {tags['carried_cpu']}, then {tags['cpu']}" if "carried_cpu" in tags else f"on {tags['cpu']}"
        by_cpu.setdefault(where, []).append(rec)
    return [f"- {cpu}: {len(group)} runs, {sum(r['summary'].get(names.WALL_S, 0) for r in group) / 3600:.2f} h"
            for cpu, group in sorted(by_cpu.items())]


def pair_diff(runs: Runs) -> Interval:
    """DiZO - MeZO test accuracy, paired by seed: what the pairs' stopping rule and their lines read."""
    return paired(runs.metric(DIZO, names.TEST_SCORE), runs.metric(MEZO, names.TEST_SCORE))[0]


def pair_lines(runs: Runs, planned: int | None = None) -> list[str]:
    """The MeZO/DiZO pairs: how many (of `planned`), whether both members of each ran one engine (the
    `engine` tag) and one CPU (`cpu`), MeZO's seed-to-seed sd, and the paired test difference with its half-width."""
    mezo, dizo = runs.seeds(MEZO), runs.seeds(DIZO)
    both = sorted(set(mezo) & set(dizo))
    test = interval(list(runs.metric(MEZO, names.TEST_SCORE).values()))
    diff = pair_diff(runs)
    if not both:
        return [f"- paired seeds: none yet{f' of {planned} planned' if planned else ''}"]
    pairs = [(s, mezo[s], dizo[s]) for s in both]
    return [(f"- paired seeds: {len(both)}{f' of {planned} planned' if planned else ''}; "
             f"{_one_per_pair(pairs, 'engine', 'the tree hash of `methods/`')}; "
             f"{_one_per_pair(pairs, 'cpu', 'its model and the instruction set torch used')}"),
            f"- MeZO's test accuracy over {test.n} seeds: sd {100 * test.sd:.1f} points",
            (f"- DiZO - MeZO, test: {diff.show(100, 1)} points; half-width {100 * diff.half_width:.1f} (aim: at most 2), "
             f"paired sd {100 * diff.sd:.1f}")]
