"""`benchmark report leaderboard`: every method family on one task, read from the `leaderboard` study's run
records (`reports/results/leaderboard/`), with how large each difference from MeZO is.

Per row: test accuracy (mean and 95% t interval over seeds), the difference from MeZO paired by seed (the
same seed gives every row the same data order) with its interval and sized verdict (`reports.stats.sized`:
against 0, against the paper's effect where Table 4 gives one on SST-2, and equivalence within +-MARGIN),
the area under the dev curve, the steps to MeZO's target and the hours they take, and what a step costs:
forwards per step, step time over those forwards' time, peak memory over inference's and the hours the
run's steps take, all from the `benchmark perf --json` repeats committed beside the records (each method
alone on a quiet machine; the study's own runs share the machine with another worker). Figures:
`reports.leaderboard_figures`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.core import names, records
from benchmark.experiments import leaderboard as experiment
from reports import paper
from reports import runs as runs_view
from reports.runs import Runs
from reports.stats import Interval, Sized, interval, paired, sized
from reports.study_tables import pair_diff, pair_lines, point, search_table, steps_to, target_of, wall_lines

EXPERIMENT = "leaderboard"
MEZO, DIZO = names.BASELINE_ROW, names.DIZO_ROW
MARGIN = experiment.PAIR_HALF_WIDTH  # "equivalent within +-2 points": the half-width the pairs aim at; no finer claim holds
HOW = "; two workers side by side, one thread each"  # how the study ran its trials
PAPER_NAMES = {"MeZO-LoRA": "MeZO LoRA"}  # a row's name in Table 4 where it differs from its label
PERF_COMMANDS = ("benchmark perf --model smollm2-135m --methods {zo} --steps 5 --json > "
                 "reports/results/leaderboard/offline/perf-N.json; the same with --methods {fo} --batch-size 8 "
                 "> perf-fo-N.json (N = 1, 2, 3; nothing else running)")


def rows() -> list[tuple[str, str]]:
    """(label, method) of every row, in the experiment's order (read when asked: the Row objects hold them)."""
    return [(row.label, row.method) for row in experiment.ROWS]


def paper_effect(label: str) -> float | None:
    """Table 4's SST-2 (OPT-2.7B) accuracy of the row minus MeZO's, as a fraction, where the paper has the
    row (negative for zero-shot: the paper's claim there is that MeZO beats it); else None."""
    table = paper.table("table4").set_index("method")
    name = PAPER_NAMES.get(label, label)
    if name not in table.index or label == MEZO:
        return None
    return (paper.parse_cell(table.loc[name, "SST-2"]).mean - paper.parse_cell(table.loc[MEZO, "SST-2"]).mean) / 100


def claim_verdict(label: str, diff: Interval) -> Sized:
    """The row's difference from MeZO read in the direction of its claim: "the row beats MeZO" (each ZO
    method's own paper claims so; Table 4 for the rows it has above MeZO), or "MeZO beats the row" where Table
    4 puts the row below (zero-shot), each against the paper's size where it gives one."""
    effect = paper_effect(label)
    if effect is not None and effect < 0:
        return sized(diff.negated(), -effect, MARGIN, what=f"MeZO - {label}")
    return sized(diff, effect, MARGIN, what=f"{label} - MeZO")


def auc(rec: dict) -> float | None:
    """The area under the dev curve from step 0 to the last evaluation over its length: the mean dev accuracy
    the run held while training (trapezoids between evaluations)."""
    steps, dev = records.curve(rec)
    if len(steps) < 2 or steps[-1] <= steps[0]:
        return None
    area = sum((s1 - s0) * (d0 + d1) / 2 for s0, s1, d0, d1 in zip(steps, steps[1:], dev, dev[1:]))
    return area / (steps[-1] - steps[0])


def perf_of(runs: Runs, method: str, key: str) -> Interval:
    """One `benchmark perf` measure of a method over the committed repeats."""
    return interval(runs.perf_values(method, key))


@dataclass
class Line:
    label: str
    method: str
    point: str
    test: Interval
    diff: Interval
    verdict: Sized | None
    area: Interval
    target: Interval
    reached: str
    target_h: Interval  # those steps at perf's steps_per_s: the time to MeZO's target, fair across rows
    forwards: float | None
    step_over_forwards: Interval
    memory: Interval  # peak over inference
    peak_gb: Interval
    train_h: Interval  # the run's steps at perf's steps_per_s (DiZO's projection amortised)


def chosen_point(runs: Runs, label: str, method: str) -> str:
    """The grid point the row's search chose: its final runs' values of the settings its grid sets."""
    seeds = runs.seeds(label)
    return point(next(iter(seeds.values()))["params"], list(experiment.GRIDS.get(method, {}))) if seeds else "-"


def line(runs: Runs, label: str, method: str) -> Line:
    test = runs.metric(label, names.TEST_SCORE)
    mezo = runs.seeds(MEZO)
    diff, _ = paired(test, runs.metric(MEZO, names.TEST_SCORE))
    verdict = None if label == MEZO or diff.n < 2 else claim_verdict(label, diff)
    areas = [a for rec in runs.seeds(label).values() if (a := auc(rec)) is not None]
    targets = {s: steps_to(rec, target_of(mezo[s])) for s, rec in runs.seeds(label).items()
               if s in mezo and int(rec["params"]["steps"]) > 0}
    steps = [int(rec["params"]["steps"]) for rec in runs.seeds(label).values()]
    rate = perf_of(runs, method, "steps_per_s")  # DiZO's projection amortised; hours as the claims report counts them
    hours = interval([steps[0] / rate.mean / 3600]) if steps and rate.n else Interval(math.nan, math.nan, math.nan, 0)
    target_h = interval([t / rate.mean / 3600 for t, _ in targets.values()] if rate.n else [])
    forwards = perf_of(runs, method, "forward_passes")
    ratio = interval([rep[method]["peak_memory_gb"] / rep[method]["inference_peak_gb"] for rep in runs.perf
                      if method in rep and rep[method].get("inference_peak_gb")])
    return Line(label, method, chosen_point(runs, label, method), interval(list(test.values())), diff, verdict,
                interval(areas), interval([t for t, _ in targets.values()]),
                f"{sum(ok for _, ok in targets.values())}/{len(targets)}", target_h,
                forwards.mean if forwards.n else None,
                perf_of(runs, method, "step_over_forwards"), ratio, perf_of(runs, method, "peak_memory_gb"), hours)


def lines(runs: Runs) -> list[Line]:
    return [line(runs, label, method) for label, method in rows() if runs.seeds(label)]


def _iv(iv: Interval, scale: float = 100.0, digits: int = 1) -> str:
    return "-" if iv.n == 0 else iv.show(scale, digits)


def _mean(iv: Interval, digits: int = 2) -> str:
    return "-" if iv.n == 0 else f"{iv.mean:.{digits}f}"


def table(found: list[Line]) -> str:
    head = ("| row | point | test % | - MeZO (points, paired) | verdict | dev AUC % | steps to MeZO's target "
            "(reached) | h to MeZO's target | forwards / step | step / its forwards | peak / inference | train h |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for ln in found:
        diff = "(baseline)" if ln.label == MEZO else ln.diff.show(100, 1) if ln.diff.n else "-"
        word = ln.verdict.word if ln.verdict else "none: one pair" if ln.diff.n == 1 else ""
        out.append(f"| {ln.label} | {ln.point} | {_iv(ln.test)} | {diff} | {word} | {_iv(ln.area)} | "
                   f"{_iv(ln.target, 1, 0) + f' ({ln.reached})' if ln.target.n else '-'} | {_iv(ln.target_h, 1, 3)} | "
                   f"{'-' if ln.forwards is None else f'{ln.forwards:g}'} | "
                   f"{_mean(ln.step_over_forwards)} | {_mean(ln.memory)} | {_mean(ln.train_h, 3)} |")
    return "\n".join(out)


def stop_line(runs: Runs) -> str:
    """Where the MeZO/DiZO pairs stand against the stopping rule stated before they ran (the experiment's
    MIN_PAIRS, PAIR_HALF_WIDTH): once every other row has its seeds, stop at a paired half-width within the
    aim with at least MIN_PAIRS pairs; else go on to every planned seed."""
    rule = (f"- stopping rule (stated before the pairs ran): once every other row is final, the pairs stop at a "
            f"half-width of at most {100 * MARGIN:.0f} points with at least {experiment.MIN_PAIRS} pairs, else run "
            f"all {len(experiment.PAIRED_SEEDS)}: ")
    pending = [row.label for row in experiment.ROWS
               if row.seeds is None and len(runs.seeds(row.label)) < len(experiment.SEEDS)]
    diff = pair_diff(runs)
    if pending:
        return rule + f"not yet ({', '.join(pending)} not final)"
    if diff.n < experiment.MIN_PAIRS:
        return rule + f"not yet ({diff.n} pairs)"
    if diff.half_width > MARGIN:
        return rule + f"not met (half-width {100 * diff.half_width:.1f} at {diff.n} pairs): the pairs go on"
    left = [s for s in experiment.PAIRED_SEEDS if s not in runs.seeds(MEZO) or s not in runs.seeds(DIZO)]
    return rule + (f"met at {diff.n} pairs (half-width {100 * diff.half_width:.1f})"
                   + (f": seeds {left[0]}-{left[-1]} are not run" if left else ""))


def page(runs: Runs, preset: str, figures: list[Path], folder: Path) -> str:
    found = lines(runs)
    intro = ("Every method family on rt-polarity with SmolLM2-135M (CPU, bf16-mixed), each row's point chosen on "
             "dev on seed 0, then run on its seeds (`benchmark/experiments/leaderboard.py` says why each grid). "
             "Test % and dev AUC %: mean [95% t interval] over seeds. `- MeZO`: the row minus MeZO, paired by seed. "
             "Each verdict reads the claim \"the row beats MeZO\" (\"MeZO beats the row\" where Table 4 puts the row "
             "below MeZO: zero-shot) (`reports.stats.sized`): that interval against 0, against Table 4's SST-2 gap "
             "where the paper has the row (the paper's claim), and against "
             f"+-{100 * MARGIN:.0f} points for equivalence. Steps to MeZO's target: to 99% of the same seed's MeZO "
             "best dev (not reached: one evaluation past the last); h to MeZO's target: those steps at the row's "
             "measured s/step, the one cost that compares a ZO step of 9 forwards, one of 2 and a first-order "
             "step (a forward and a backward) fairly. Forwards, step / its forwards, peak / inference "
             "and train h (the run's steps at the measured s/step) come from `benchmark perf` on a quiet machine"
             + (f" ({len(runs.perf)} repeats; hardware: {runs.perf_hardware()})." if runs.perf else "."))
    out = [f"# Leaderboard ({preset})", "", intro, "", table(found), "", "## Verdicts, with the numbers", ""]
    out += [f"- {ln.label}: **{ln.verdict.word}**: {ln.verdict.reason}" for ln in found if ln.verdict is not None]
    out += ["", "## MeZO and DiZO, paired", ""] + pair_lines(runs, len(experiment.PAIRED_SEEDS)) + [stop_line(runs)]
    if not runs.perf:
        zo = " ".join(m for _, m in rows() if m not in ("zero-shot", "ft", "lora"))
        out += ["", f"No `benchmark perf` repeats committed: `{PERF_COMMANDS.format(zo=zo, fo='ft lora')}`"]
    out += ["", "## Search (seed 0)", "", search_table(runs), "", "## Wall time", ""] + wall_lines(runs, HOW)
    out += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder)})" for p in figures if p.suffix == ".png"]
    return "\n".join(out) + "\n"


def load(folder: Path, preset: str | None = None) -> tuple[Runs, str]:
    return runs_view.load(folder, preset, hint="run `benchmark study leaderboard` first")


def report(folder: Path, out: Path, preset: str | None = None) -> str:
    """Write `<out>/leaderboard.md` and its figures from the records under `folder`; return the page."""
    from reports.leaderboard_figures import write_figures

    runs, preset = load(folder, preset)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(runs, lines(runs), out)
    text = page(runs, preset, figures, out)
    (out / "leaderboard.md").write_text(text)
    return text
