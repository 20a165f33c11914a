"""`benchmark report claims`: the DiZO paper's claims C1-C5 (C3 in two parts: uneven drift, and drift
shaped like FO's), each with the paper's number, ours over seeds (mean and 95% interval; MeZO against DiZO
seed by seed) and a verdict computed from the interval.

Reads run records only (`benchmark.core.records`: what the `claims` study commits under
`reports/results/claims/`), so the report renders on a fresh machine without an MLflow store.
Final runs are the records tagged final (each row's best point on dev, one run per seed); search
records are the grid, shown with the point each row chose. A record of the row `MeZO pilot` is the
dev curve the study's step count was read from.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.core import names, records
from benchmark.core.errors import BenchmarkError
from benchmark.experiments import ablation_c2
from benchmark.experiments import claims as claims_experiment
from reports import paper
from reports import runs as runs_view
from reports.runs import Runs
from reports.stats import Interval, all_of, correlation, interval, paired, sized, verdict
from reports.study_tables import dev_curve, pair_lines, point, search_table, steps_to, target_of, wall_lines

EXPERIMENT = "claims"  # the study whose records this report reads (benchmark/experiments/claims.py)
PILOT_EXPERIMENT = "claims-pilot"  # the pilot's study, whose record sits beside the claims study's
MEZO, DIZO, FT, ZERO_SHOT, HIZOO = names.BASELINE_ROW, names.DIZO_ROW, "FT", "Zero-shot", "HiZOO"
PILOT = claims_experiment.PILOT_ROW
FLAT = 0.01  # the pilot flattens where the moving mean of 3 evaluations never again gains more than this
MEMORY_AS_MEZO = 1.25  # C5: "DiZO's memory is MeZO's": peak ratio below the paper's largest (RTE 9.5/7.8 = 1.22)
MEMORY_FAR_BELOW_FT = 0.5  # C5: "far below FT's": at most half of FT's peak (the paper: 0.15-0.17)
THROUGHPUT = 0.9  # C5: "at least 0.9x MeZO's"
ROLES = ("q", "v")  # C3: the projections DiZO rescales; their per-layer spread is the statistic


def load(folder: Path, preset: str | None = None) -> tuple[Runs, str]:
    """The claims study's records under `folder`, and the pilot's (a study of its own, beside it)."""
    return runs_view.load(folder, preset, beside=(folder.parent / PILOT_EXPERIMENT,), single=PILOT,
                          hint="run `benchmark study claims` first")


# ---- the statistics each claim reads --------------------------------------------------------------

def after_start(rec: dict) -> tuple[list[int], list[float]]:
    steps, dev = records.curve(rec)
    return [s for s in steps if s > 0], [d for s, d in zip(steps, dev) if s > 0]


def to_target(mezo: dict, dizo: dict, rates: dict[str, float] | None = None) -> dict:
    """C1 for one seed: MeZO's target (`study_tables.target_of`: 99% of its best dev after step 0) and the
    steps each run needs to reach it (a miss: `study_tables.censored`), and the hours those steps take at
    `rates` (method -> steps/s; default: each run's own, which a busy machine slows)."""
    goal = target_of(mezo)
    out: dict = {"target": goal}
    for key, rec in (("mezo", mezo), ("dizo", dizo)):
        out[key], out[f"{key}_reached"] = steps_to(rec, goal)
        out[f"{key}_h"] = out[key] / (rates or {}).get(key, dev_curve(rec).steps_per_s) / 3600
    return out


def perf_rates(runs: Runs) -> dict[str, float]:
    """Mean steps/s per method over the committed `benchmark perf` repeats (DiZO's with its projection
    amortised): each method alone on a quiet machine, so a ratio of hours compares the methods, not the
    load beside whichever trial ran when."""
    found = {method: runs.perf_values(method, "steps_per_s") for method in {m for rep in runs.perf for m in rep}}
    return {method: sum(v) / len(v) for method, v in found.items() if v}


def dev_at(rec: dict, step: int) -> float | None:
    steps, dev = records.curve(rec)
    return dict(zip(steps, dev)).get(step)


def last_drift(rec: dict, role: str) -> list[tuple[int, float]]:
    """(layer, ||theta - theta0||) of one projection role at the run's last logged step, by layer."""
    return sorted((int(m.group(2)), float(points[-1][1])) for key, points in rec["curves"].items()
                  if (m := names.DRIFT_KEY.match(key)) and m.group(1) == role and points)


def role_profile(rec: dict, role: str) -> list[float]:
    """One role's per-layer distance to theta0 divided by its mean over layers (empty when nothing moved)."""
    values = [v for _, v in last_drift(rec, role)]
    mean = sum(values) / len(values) if values else 0.0
    return [v / mean for v in values] if mean > 0 else []


def layer_spread(rec: dict, roles: tuple[str, ...] = ROLES) -> float | None:
    """Coefficient of variation across layers of ||theta - theta0|| at the run's last logged step, per
    projection role (the sample sd of its `role_profile`), averaged over `roles` (same-shaped matrices: a ZO
    step moves them all alike)."""
    cvs = [math.sqrt(sum((v - 1.0) ** 2 for v in ratios) / (len(ratios) - 1))
           for role in roles if len(ratios := role_profile(rec, role)) > 1]
    return sum(cvs) / len(cvs) if cvs else None


def profile(rec: dict, roles: tuple[str, ...] = ROLES) -> list[float]:
    """Each role's `role_profile`, one after the other: the shape of the drift, whatever its size (FT moves
    the weights far more than a ZO run)."""
    return [v for role in roles for v in role_profile(rec, role)]


def mean_profile(recs: list[dict]) -> list[float]:
    """The mean of the records' profiles; empty if none has drift or their layer counts differ."""
    found = [p for r in recs if (p := profile(r))]
    return [sum(col) / len(found) for col in zip(*found)] if found and len({len(p) for p in found}) == 1 else []


def like_ft(runs: Runs, row: str) -> dict[int, float]:
    """Per seed of `row`, Pearson's r between its drift profile and FT's (the mean of FT's seeds' profiles)."""
    ft = mean_profile(list(runs.seeds(FT).values()))
    return {s: r for s, rec in runs.seeds(row).items() if (r := correlation(profile(rec), ft)) is not None}


def like_itself(runs: Runs, row: str) -> dict[int, float]:
    """Per seed of `row`, r against the mean profile of the row's other seeds: whether the row has a shape
    of its own that another seed repeats (FT's is the bar a shape-match with FT can reach)."""
    seeds = runs.seeds(row)
    return {s: r for s, rec in seeds.items()
            if (r := correlation(profile(rec), mean_profile([o for t, o in seeds.items() if t != s]))) is not None}


def flattening(rec: dict) -> int | None:
    """The pilot's step count: the first evaluation whose 3-evaluation moving mean of dev is never
    again exceeded by more than FLAT (a later gain smaller than one point is noise on 500 examples)."""
    steps, dev = after_start(rec)
    if len(dev) < 3:
        return None
    smooth = [sum(dev[max(0, i - 2):i + 1]) / len(dev[max(0, i - 2):i + 1]) for i in range(len(dev))]
    return next((steps[i] for i in range(len(smooth)) if max(smooth[i:]) <= smooth[i] + FLAT), None)


# ---- the claims ---------------------------------------------------------------------------------------

@dataclass
class Finding:
    id: str  # C1 ... C5, C3b
    claim: str
    paper: str
    ours: list[str]
    verdict: str
    detail: str = ""
    scope: str = ""  # where the runs come from when not this study's (the leaderboard's pairs)

    @property
    def title(self) -> str:
        return f"{self.id}{f' ({self.scope})' if self.scope else ''}: {self.claim}"


def ablations() -> tuple[str, str]:
    """The ablation rows' labels, as the experiment writes them (read when asked: one Row holds each)."""
    return ablation_c2.NO_REINIT.label, ablation_c2.NO_CLIP.label


def _pct(iv: Interval) -> str:
    return iv.show(100, 1)


def released_dev(step: int) -> tuple[float, float]:
    """(MeZO, DiZO) dev accuracy at `step` in the authors' released logs (OPT-2.7B, SST-2;
    `reports/paper/reference_logs_opt2.7b_sst2.csv`)."""
    logs = paper.table("reference-logs").set_index("step")
    row = logs.loc[str(step)]
    return float(row["mezo_dev_acc"]), float(row["dizo_dev_acc"])


def table4_sst2() -> tuple[float, float]:
    """(MeZO, DiZO) SST-2 test accuracy on OPT-2.7B in Table 4 (`reports/paper/table4_opt2.7b.csv`), as fractions."""
    t4 = paper.table("table4").set_index("method")
    return tuple(paper.parse_cell(t4.loc[m, "SST-2"]).mean / 100 for m in ("MeZO", "DiZO"))  # type: ignore[return-value]


def table10_sst2(method: str) -> dict[str, float]:
    """Table 10's SST-2 (OPT-2.7B) row of a method (`reports/paper/table6_10_11_memory_speed_opt2.7b.csv`):
    peak memory GB, throughput it/s, training iterations and GPU hours as % of MeZO's."""
    t10 = paper.table("table6")
    row = t10[(t10["task"] == "SST-2") & (t10["method"] == method)].iloc[0]
    keys = ("peak_memory_gb", "throughput_it_s", "train_iter_pct", "gpu_hours_pct")
    return {key: paper.parse_cell(row[key]).mean for key in keys}


def c1(runs: Runs) -> Finding:
    mezo, dizo = runs.seeds(MEZO), runs.seeds(DIZO)
    rates = perf_rates(runs)
    rates = rates if {"mezo", "dizo"} <= rates.keys() else {}  # never one quiet rate against one contended
    per_seed = {s: to_target(mezo[s], dizo[s], rates) for s in sorted(set(mezo) & set(dizo))}
    steps, _ = paired({s: c["dizo"] for s, c in per_seed.items()}, {s: c["mezo"] for s, c in per_seed.items()})
    ratio, _ = paired({s: c["dizo"] for s, c in per_seed.items()}, {s: c["mezo"] for s, c in per_seed.items()}, "ratio")
    hours, _ = paired({s: c["dizo_h"] for s, c in per_seed.items()}, {s: c["mezo_h"] for s, c in per_seed.items()},
                      "ratio")
    ours = [f"steps to MeZO's target, DiZO - MeZO: {steps.show(1, 0)}",
            f"DiZO's steps as % of MeZO's: {_pct(ratio)}; train hours: {_pct(hours)} ("
            + ("at `benchmark perf`'s steps/s, DiZO's projection amortised)" if rates
               else "at each run's own steps/s: no `benchmark perf` repeats committed)")]
    claimed = table10_sst2("DiZO")
    saved = sized(Interval(1 - ratio.mean, 1 - ratio.hi, 1 - ratio.lo, ratio.n, ratio.sd),
                  1 - claimed["train_iter_pct"] / 100, unit="% of MeZO's steps", what="the steps DiZO saves")
    ours.append(f"{saved.reason}: **{saved.word}**")
    released = {at: released_dev(at) for at in (300, 500)}
    for at, (m, d) in released.items():
        diff, _ = paired({s: dev_at(r, at) for s, r in dizo.items() if dev_at(r, at) is not None},
                         {s: dev_at(r, at) for s, r in mezo.items() if dev_at(r, at) is not None})
        if diff.n:
            v = sized(diff, d - m, what=f"dev at step {at}, DiZO - MeZO")
            ours.append(f"{v.reason}: **{v.word}**")
    rows = ["| seed | MeZO's target (dev) | MeZO steps | DiZO steps | DiZO / MeZO |", "|---|---|---|---|---|"]
    rows += [f"| {s} | {c['target']:.3f} | {c['mezo']} | {c['dizo']}{'' if c['dizo_reached'] else ' (not reached)'} "
             f"| {c['dizo'] / c['mezo']:.2f} |" for s, c in per_seed.items()]
    return Finding("C1", "DiZO reaches MeZO's best dev accuracy in fewer iterations (Figure 4, Tables 6/11)",
                   f"SST-2, OPT-2.7B: {claimed['train_iter_pct']:g}% of MeZO's iterations, "
                   f"{claimed['gpu_hours_pct']:g}% of its GPU hours (Table 10); the released logs: "
                   + ", ".join(f"DiZO {d:.3f} vs {m:.3f} dev at step {at}" for at, (m, d) in released.items()),
                   ours, saved.word, "\n".join(rows))


def c2(runs: Runs) -> Finding:
    diff, each = paired(runs.metric(DIZO, names.TEST_SCORE), runs.metric(MEZO, names.TEST_SCORE))
    mezo, dizo = interval(list(runs.metric(MEZO, names.TEST_SCORE).values())), \
        interval(list(runs.metric(DIZO, names.TEST_SCORE).values()))
    ours = [f"test accuracy: MeZO {_pct(mezo)}, DiZO {_pct(dizo)}",
            f"DiZO - MeZO, paired by seed (points): {diff.show(100, 1)}; per seed: "
            + ", ".join(f"{s}: {100 * d:+.1f}" for s, d in each.items())]
    m, d = table4_sst2()
    v = sized(diff, d - m, what="test, DiZO - MeZO")
    ours.append(v.reason)
    return Finding("C2", "at equal steps DiZO's test accuracy is at least MeZO's (Table 4)",
                   f"SST-2, OPT-2.7B: DiZO {100 * d:.1f} vs MeZO {100 * m:.1f} (Table 4, one seed)", ours, v.word)


def c3(runs: Runs) -> Finding:
    spread = {row: {s: v for s, r in runs.seeds(row).items() if (v := layer_spread(r)) is not None}
              for row in (FT, MEZO, DIZO)}
    ours = [f"spread across layers of the distance to theta0 (CV, {'/'.join(ROLES)} projections, last step): "
            + "; ".join(f"{row} {interval(list(v.values())).show(100, 1)}" for row, v in spread.items())]
    parts = []
    for row in (FT, DIZO):
        diff, _ = paired(spread[row], spread[MEZO])
        parts.append(verdict(diff))
        ours.append(f"{row} - MeZO (CV points): {diff.show(100, 1)} ({parts[-1]})")
    return Finding("C3", "FO's distance from the pre-trained weights differs by layer, ZO's does not; DiZO's becomes "
                   "layer-dependent (Figures 1 and 3)", "qualitative (plots of OPT-2.7B)", ours, all_of(parts))


def c3b(runs: Runs) -> Finding:
    """C3 holds for any uneven drift, a jagged one included; the paper says more: DiZO's updates "closely
    resemble" FO's. Its test: the per-layer profile's correlation with FT's, above 0 over DiZO's seeds."""
    shape = {row: like_ft(runs, row) for row in (MEZO, DIZO)}
    found = verdict(interval(list(shape[DIZO].values())))
    ours = ["Pearson r of the per-layer profile (each role / its mean) with FT's mean profile: "
            + "; ".join(f"{row} {interval(list(v.values())).show(1, 2)}" for row, v in shape.items()),
            "each seed against the mean of its row's other seeds (a shape the row repeats?): "
            + "; ".join(f"{row} {interval(list(like_itself(runs, row).values())).show(1, 2)}" for row in (FT, DIZO)),
            f"claim: DiZO's r with FT's above 0 ({found})"]
    return Finding("C3b", "DiZO's per-layer drift has FO's shape (\"layer-wise adaptive updates that closely resemble "
                   "FO\", Section 1)", "qualitative", ours, found)


def table_c2_sst2() -> dict[str, float]:
    """Table C.2's SST-2 column (RoBERTa-large, k=16; `reports/paper/table_c2_ablation_roberta_k16.csv`), as
    fractions: DiZO's accuracy, and each ablation's (by the experiment's row label)."""
    c2 = paper.table("ablation-c2")
    dizo = c2[c2["method"] == "DiZO"].set_index(["reinit", "clipping"])["SST-2"]
    no_reinit, no_clip = ablations()
    return {DIZO: paper.parse_cell(dizo.loc[("yes", "yes")]).mean / 100,
            no_reinit: paper.parse_cell(dizo.loc[("no", "yes")]).mean / 100,
            no_clip: paper.parse_cell(dizo.loc[("yes", "no")]).mean / 100}


def c4(runs: Runs) -> Finding:
    """Each removal's cost to DiZO, paired by seed, read against Table C.2's SST-2 cost (the paper's only
    numbers for it: another model, as C2's Table 4 is)."""
    claimed = table_c2_sst2()
    ours, parts = [], []
    for row in ablations():
        diff, _ = paired(runs.metric(DIZO, names.TEST_SCORE), runs.metric(row, names.TEST_SCORE))
        v = sized(diff, claimed[DIZO] - claimed[row], what=f"test, DiZO - {row}")
        parts.append(v.word)
        ours.append(f"{v.reason}: **{v.word}**")
    paper_cells = ", ".join(f"{row} {100 * acc:.1f}" for row, acc in claimed.items())
    return Finding("C4", "removing re-initialisation, or removing clipping, hurts DiZO (Appendix C.2)",
                   f"RoBERTa-large k=16, SST-2: {paper_cells} (Table C.2; SNLI and TREC fall too)", ours, all_of(parts))


PERF_COMMAND = ("benchmark perf --model smollm2-135m --methods mezo dizo ft --steps 10 --json "
                "> reports/results/claims/offline/perf-N.json  (N = 1, 2, 3; nothing else running)")


def c5(runs: Runs) -> Finding:
    """From `benchmark perf` repeats (each method in a fresh process on one batch of 16, medians of its
    steps): the study's runs share one worker process, whose RSS peak carries what earlier trials left."""
    def ratio(a: str, b: str, key: str) -> Interval:
        return interval([rep[a][key] / rep[b][key] for rep in runs.perf if a in rep and b in rep])

    mezo, dizo = table10_sst2("MeZO"), table10_sst2("DiZO")
    vs_mezo, vs_ft = ratio("dizo", "mezo", "peak_memory_gb"), ratio("dizo", "ft", "peak_memory_gb")
    speed = ratio("dizo", "mezo", "steps_per_s")
    parts = [verdict(vs_mezo, MEMORY_AS_MEZO, above=False), verdict(vs_ft, MEMORY_FAR_BELOW_FT, above=False),
             verdict(speed, THROUGHPUT)]
    ours = [f"peak memory DiZO / MeZO: {vs_mezo.show(1, 3)} (claim: below {MEMORY_AS_MEZO}; {parts[0]})",
            f"peak memory DiZO / FT: {vs_ft.show(1, 3)} (claim: below {MEMORY_FAR_BELOW_FT}; {parts[1]})",
            f"steps/s DiZO / MeZO, projection amortised: {speed.show(1, 3)} (claim: above {THROUGHPUT}; {parts[2]})",
            f"n = repeats of `benchmark perf` ({len(runs.perf)} committed; hardware: {runs.perf_hardware()})"
            if runs.perf else f"not measured yet: `{PERF_COMMAND}`"]
    return Finding("C5", "DiZO's memory is MeZO's, far below FT's; its throughput is at least 0.9x MeZO's (Table 10)",
                   f"SST-2, OPT-2.7B: {dizo['peak_memory_gb']:g} vs {mezo['peak_memory_gb']:g} GB (FT "
                   f"{table10_sst2('FT')['peak_memory_gb']:g}); {dizo['throughput_it_s']:g} vs "
                   f"{mezo['throughput_it_s']:g} it/s ({dizo['throughput_it_s'] / mezo['throughput_it_s']:.2f}x)",
                   ours, all_of(parts))


CLAIMS = (c1, c2, c3, c3b, c4, c5)
LEADERBOARD = "leaderboard"  # its MeZO and DiZO rows are 20 paired seeds of the same comparison (newer engine)


def leaderboard_pairs(folder: Path, preset: str) -> list[Finding]:
    """C1 and C2 again on the `leaderboard` study's MeZO/DiZO pairs (records beside this study's), where it has
    two or more: the same rows, points, data and budget over more seeds, on the engine of that study."""
    board = folder.parent / LEADERBOARD
    try:
        runs, _ = runs_view.load(board, preset) if board.is_dir() else (None, preset)
    except BenchmarkError:
        return []
    n = 0 if runs is None else len(set(runs.seeds(MEZO)) & set(runs.seeds(DIZO)))
    if n < 2:  # one pair has no interval
        return []
    return [dataclasses.replace(f, scope=f"leaderboard, {n} pairs") for f in (c1(runs), c2(runs))]


# ---- the page -----------------------------------------------------------------------------------------

def rows_table(runs: Runs) -> str:
    """Accuracy and time per row. No memory column: the study's trials share a worker process, whose RSS
    peak carries what earlier trials left (C5 reads `benchmark perf` instead)."""
    lines = ["| row | seeds | dev best | test | train steps/s | wall min (mean) |", "|---|---|---|---|---|---|"]
    for row, by_seed in runs.finals.items():
        dev, test, rate, wall = (interval(list(runs.metric(row, key).values())) for key in
                                 (names.DEV_BEST, names.TEST_SCORE, names.STEPS_PER_S, names.WALL_S))
        lines.append(f"| {row} | {','.join(map(str, sorted(by_seed)))} | {_pct(dev)} | {_pct(test)} | "
                     f"{rate.show(1, 3) if rate.n else '-'} | {wall.mean / 60:.1f} |")
    return "\n".join(lines)


def hizoo_lines(runs: Runs) -> list[str]:
    if HIZOO not in runs.finals:
        return []
    diff, _ = paired(runs.metric(HIZOO, names.TEST_SCORE), runs.metric(MEZO, names.TEST_SCORE))
    scale = {key: interval([records.curve(r, key)[1][-1] for r in runs.seeds(HIZOO).values() if r["curves"].get(key)])
             for key in (names.HIZOO_SCALE_MIN, names.HIZOO_SCALE_MEDIAN, names.HIZOO_SCALE_MAX)}
    return [f"- HiZOO - MeZO, test (points): {diff.show(100, 1)} ({verdict(diff)} that HiZOO is better)",
            "- HiZOO's perturbation scale sqrt(M) at the last evaluation (1 at the start): "
            + ", ".join(f"{k.split('_')[-1]} {v.show(1, 3)}" for k, v in scale.items())]


def page(runs: Runs, preset: str, figures: list[Path], folder: Path, pairs: tuple[Finding, ...] = ()) -> str:
    findings = [claim(runs) for claim in CLAIMS] + list(pairs)
    out = [f"# Claims ({preset})", "",
           "The DiZO paper's claims on rt-polarity with SmolLM2-135M (CPU), each row's point chosen on dev on seed 0, "
           "then run on every seed. Intervals: 95% t over seeds; MeZO and DiZO paired by seed (same data order "
           "and z until DiZO's first projection). Verdict: reproduced / not reproduced when the interval is wholly "
           "on one side of the claim's threshold, inconclusive when it spans it; where the paper gives an effect "
           "size (C1's steps saved and dev gaps, C2), read against it too: reproduced (the interval above 0 holds "
           "it), reproduced, smaller than claimed (above 0, below it), smaller than claimed (holds 0, excludes "
           "it), not reproduced (reversed) (below 0), inconclusive (holds both 0 and the paper's effect).", "",
           "| claim | paper | ours | verdict |", "|---|---|---|---|"]
    out += [f"| {f.title} | {f.paper} | {'<br>'.join(f.ours)} | **{f.verdict}** |" for f in findings]
    for f in findings:
        out += ["", f"## {f.title}", "", f"- paper: {f.paper}"] + [f"- {line}" for line in f.ours]
        out += [f"- verdict: **{f.verdict}**"] + (["", f.detail] if f.detail else [])
    out += ["", "## Rows (final runs)", "", rows_table(runs), ""] + hizoo_lines(runs)
    out += ["", "## Seed-to-seed spread", ""] + pair_lines(runs)
    if runs.pilot:
        steps, dev = records.curve(runs.pilot)
        out += ["", "## Step count (the pilot MeZO run)", "",
                f"- {point(runs.pilot['params'], ['lr', 'eps', 'steps', 'batch_size'])}: flattens at step "
                f"{flattening(runs.pilot)} (3-evaluation moving mean never again {FLAT * 100:.0f} point higher)",
                "- dev: " + ", ".join(f"{s}: {d:.3f}" for s, d in zip(steps, dev) if s % 100 == 0)]
    out += ["", "## Search (seed 0)", "", search_table(runs), "", "## Wall time", ""] + wall_lines(runs) + ["",
            "## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder)})" for p in figures if p.suffix == ".png"]
    return "\n".join(out) + "\n"


def report(folder: Path, out: Path, preset: str | None = None) -> str:
    """Write `<out>/claims.md` and its figures from the records under `folder`; return the page."""
    from reports.claims_figures import write_figures

    runs, preset = load(folder, preset)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(runs, out)
    text = page(runs, preset, figures, out, tuple(leaderboard_pairs(folder, preset)))
    (out / "claims.md").write_text(text)
    return text
