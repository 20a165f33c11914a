"""The paper's tables from MLflow, with the published numbers beside ours.

Ours: the final runs of a study (`reports.runs`). A column is a (task, measure): test score x 100 as
the paper prints it, a `perf/*` metric, or a percentage of MeZO's iterations / train hours to the
convergence target (`reports.convergence`). Cells are `mean (std)` over seeds where there are several.
Paper: `reports/paper/*.csv`, rows matched by the experiment's row labels (the paper's), columns by
task (offline tasks against their analogue: rt-polarity vs SST-2, rt-5way vs SST-5).
Reads MLflow and pandas only, never torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from benchmark.core import names
from benchmark.core.names import BASELINE_ROW, DIZO_ROW
from benchmark.experiments import ablation_c2
from reports.convergence import TARGET_DEFINITION, relative
from reports.paper import Value, parse_cell, table
from reports.runs import curve

PAPER_COLUMNS = {"sst2": "SST-2", "sst5": "SST-5", "snli": "SNLI", "mnli": "MNLI", "rte": "RTE", "trec": "TREC",
                 "cb": "CB", "boolq": "BoolQ", "wsc": "WSC", "wic": "WIC", "multirc": "MultiRC", "squad": "SQuAD",
                 "drop": "DROP"}
ANALOGUES = {"rt-polarity": "SST-2", "rt-5way": "SST-5"}  # the offline corpora SST was built from
GENERATION = ("SQuAD", "DROP")
MISSING = "-"
NOT_REACHED = "n/r"


@dataclass(frozen=True)
class Measure:
    header: str
    higher_is_better: bool
    metric: str | None = None  # MLflow summary metric; None: a percentage of MeZO's (convergence)
    scale: float = 1.0


MEASURES = {  # keys are the paper CSVs' column names (table6_10_11)
    "test": Measure("test", True, names.column(names.TEST_SCORE), 100.0),
    "peak_memory_gb": Measure("peak GB", False, names.column(names.PEAK_MEMORY)),
    "avg_memory_gb": Measure("avg GB", False, names.column(names.AVG_MEMORY)),
    "throughput_it_s": Measure("it/s", True, names.column(names.STEPS_PER_S)),
    "train_iter_pct": Measure("train iter %", False),
    "gpu_hours_pct": Measure("GPU hours %", False),
}


@dataclass(frozen=True)
class Column:
    task: str  # ours
    measure: str = "test"


def paper_task(task: str) -> str | None:
    return PAPER_COLUMNS.get(task) or ANALOGUES.get(task)


def task_header(task: str) -> str:
    return f"{task} (vs {ANALOGUES[task]})" if task in ANALOGUES else paper_task(task) or task


@dataclass(frozen=True)
class Spec:
    """How an experiment's table lines up with the paper's CSV."""

    paper: str  # reports.paper table name
    label: Callable[[dict], str | None] = lambda row: row["method"]  # paper row -> our row label (None: skip)
    groups: tuple[tuple[str, ...], ...] = ()  # rows compared for bold (the paper bolds within groups)
    measures: tuple[str, ...] = ("test",)
    paper_column: Callable[[str, str], str] = lambda task, measure: task  # (paper task, measure) -> CSV column
    task_rows: str | None = None  # the CSV has a row per (task, method), task in this column: a table per task


def _table3_label(row: dict) -> str:
    return "Zero-shot" if row["k"] == "0" else f"{row['method']} k={row['k']}"


def _table8_label(row: dict) -> str:
    roles = [role for role, col in (("q", "attn_q"), ("v", "attn_v"), ("k", "attn_k"), ("o", "attn_o"),
                                    ("dense", "dense")) if row[col] == "yes"]
    return f"DiZO [{','.join(roles)}]"


def _c2_label(row: dict) -> str:
    if row["method"] == BASELINE_ROW:
        return BASELINE_ROW
    return {("no", "yes"): ablation_c2.NO_REINIT.label, ("yes", "no"): ablation_c2.NO_CLIP.label}.get(
        (row["reinit"], row["clipping"]), DIZO_ROW)


def _table9_column(task: str, measure: str) -> str:
    return f"{task} {('f1' if task in GENERATION else 'acc') if measure == 'test' else measure}"


ZO_GROUPS = (("MeZO", "HiZOO", "DiZO"), ("MeZO LoRA", "HiZOO LoRA", "DiZO LoRA"))
SPECS: dict[str, Spec] = {
    "table4": Spec("table4", groups=ZO_GROUPS),
    "table5": Spec("table5", groups=ZO_GROUPS),
    "table3": Spec("table3", label=_table3_label,
                   groups=tuple((f"MeZO k={k}", f"MeZO LoRA k={k}", f"DiZO k={k}", f"DiZO LoRA k={k}")
                                for k in (16, 512))),
    "table6": Spec("table6", task_rows="task",
                   measures=("peak_memory_gb", "avg_memory_gb", "throughput_it_s", "train_iter_pct", "gpu_hours_pct"),
                   paper_column=lambda task, measure: measure,
                   groups=(("FT", "LoRA", "DiZO-FO", "DiZO-FO LoRA"), ZO_GROUPS[0] + ZO_GROUPS[1])),
    "table8": Spec("table8", label=_table8_label),
    "table9": Spec("table9", measures=("test", "gpu_hours_pct"), paper_column=_table9_column),
    "ablation-c2": Spec("ablation-c2", label=_c2_label),
    "table12": Spec("table12_13", label=lambda r: r["method"] if r["model"] == "Llama3-3B" else None,
                    groups=((BASELINE_ROW, DIZO_ROW),)),
    "table13": Spec("table12_13", label=lambda r: r["method"] if r["model"] == "Llama3-8B" else None,
                    groups=((BASELINE_ROW, DIZO_ROW),)),
}
DEFAULT_SPEC = Spec(paper="")  # experiments without a paper table (demo): ours only


@dataclass
class Table:
    """Rows x columns of `Value`s (ours) and the paper's, plus what a reader needs below it."""

    name: str  # file stem: `table`, or `table-<task>` for a table per task
    title: str
    rows: list[str]
    columns: list[Column]
    ours: dict[tuple[str, Column], Value] = field(default_factory=dict)
    paper: dict[tuple[str, Column], Value] = field(default_factory=dict)
    groups: tuple[tuple[str, ...], ...] = ()
    footnotes: list[str] = field(default_factory=list)

    per_task: bool = False  # columns are one task's measures (its title names the task)

    def header(self, column: Column) -> str:
        if self.per_task:
            return MEASURES[column.measure].header
        if {c.measure for c in self.columns} == {"test"}:
            return task_header(column.task)
        return f"{task_header(column.task)} {MEASURES[column.measure].header}"


def _mean_std(values: list[float]) -> Value:
    mean = sum(values) / len(values)
    if len(values) < 2 or math.isinf(mean):
        return Value(mean)
    return Value(mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))


def _relative_values(runs: pd.DataFrame, measure: str) -> dict[tuple[str, str], list[float]]:
    """Per (row, task): each seed's percentage of the baseline's (MeZO: same task and seed, its first seed
    when that seed is missing). inf where the run never reached the target."""
    out: dict[tuple[str, str], list[float]] = {}
    for task, by_task in runs.groupby("task"):
        mezo = {int(r["seed"]): curve(r) for _, r in by_task[by_task["row"] == BASELINE_ROW].iterrows()}
        mezo = {seed: c for seed, c in mezo.items() if c is not None}
        if not mezo:
            continue
        for _, run in by_task.iterrows():
            mine = curve(run)
            if mine is None:
                continue
            pct = relative(mine, mezo.get(int(run["seed"]), mezo[min(mezo)]))[measure]
            out.setdefault((run["row"], task), []).append(math.inf if pct is None else pct)
    return out


def measured(runs: pd.DataFrame, measure: str) -> dict[tuple[str, str], Value]:
    """Ours per (row, task) for one measure."""
    spec = MEASURES[measure]
    if runs.empty:
        return {}
    if spec.metric is None:
        per_cell = _relative_values(runs, measure)
    else:
        if spec.metric not in runs:
            return {}
        present = runs[runs[spec.metric].notna()]
        per_cell = {(row, task): (group.sort_values("seed")[spec.metric] * spec.scale).tolist()
                    for (row, task), group in present.groupby(["row", "task"])}
    return {key: _mean_std(values) for key, values in per_cell.items() if values}


def _paper_values(spec: Spec, columns: list[Column]) -> dict[tuple[str, Column], Value]:
    out = {}
    for record in table(spec.paper).to_dict("records"):
        label = spec.label(record)
        if label is None:
            continue
        for column in columns:
            name = paper_task(column.task)
            if name is None or (spec.task_rows and record[spec.task_rows] != name):
                continue
            value = parse_cell(record.get(spec.paper_column(name, column.measure), ""))
            if value is not None:
                out[(label, column)] = value
    return out


def build(experiment: str, rows: list[str], tasks: list[str], runs: pd.DataFrame, make_hint: str) -> list[Table]:
    """The experiment's table(s): one, or one per task where the paper prints one per task (Tables 6/10/11)."""
    spec = SPECS.get(experiment, DEFAULT_SPEC)
    values = {m: measured(runs, m) for m in spec.measures}
    layouts = [(f"table-{t}", f"{experiment}: {task_header(t)}", [t]) for t in tasks] if spec.task_rows \
        else [("table", experiment, tasks)]
    out = []
    for name, title, layout_tasks in layouts:
        columns = [Column(t, m) for t in layout_tasks for m in spec.measures]
        t = Table(name, title, rows, columns, groups=spec.groups, per_task=spec.task_rows is not None,
                  ours={(r, c): values[c.measure][(r, c.task)] for r in rows for c in columns
                        if (r, c.task) in values[c.measure]},
                  paper=_paper_values(spec, columns) if spec.paper else {})
        t.footnotes = footnotes(t, make_hint)
        out.append(t)
    return out


def footnotes(t: Table, make_hint: str) -> list[str]:
    notes = []
    missing = [(r, c) for r in t.rows for c in t.columns if (r, c) not in t.ours]
    if missing:
        cells = sorted({f"{r} on {c.task}" for r, c in missing})
        named = ", ".join(cells[:6]) + (f" and {len(cells) - 6} more" if len(cells) > 6 else "")
        notes.append(f"{MISSING}: no finished final run yet ({named}); run `{make_hint}` (it resumes).")
    if any(MEASURES[c.measure].metric is None for c in t.columns):
        notes.append(f"% columns: relative to MeZO on the same task. {TARGET_DEFINITION} "
                     f"{NOT_REACHED}: the target was never reached within the run.")
    if any(c.task in ANALOGUES for c in t.columns):
        notes.append("Offline analogues: rt-polarity is compared with SST-2 and rt-5way with SST-5 (the "
                     "Rotten Tomatoes sentences SST was built from; a different model and test set).")
    if any(v.std is not None for v in t.ours.values()):
        notes.append("mean (std) over seeds, as the paper reports them.")
    return notes


def fmt(value: Value | None) -> str:
    if value is None:
        return MISSING
    if math.isinf(value.mean):
        return NOT_REACHED
    return f"{value.mean:.1f}" if value.std is None else f"{value.mean:.1f} ({value.std:.1f})"


def best_in_groups(t: Table) -> set[tuple[str, Column]]:
    """Cells that are the best of their group in their column (ties all bold), as the paper marks them."""
    bold = set()
    for group in t.groups or (tuple(t.rows),):
        for column in t.columns:
            sign = 1 if MEASURES[column.measure].higher_is_better else -1
            cells = [(r, sign * t.ours[(r, column)].mean) for r in group if (r, column) in t.ours]
            if cells:
                top = max(v for _, v in cells)
                bold |= {(r, column) for r, v in cells if v == top and not math.isinf(v)}
    return bold


def to_markdown(t: Table) -> str:
    bold = best_in_groups(t)
    lines = ["| method | " + " | ".join(t.header(c) for c in t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
    for row in t.rows:
        cells = [f"**{fmt(t.ours.get((row, c)))}**" if (row, c) in bold else fmt(t.ours.get((row, c))) for c in t.columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + t.footnotes)


def _latex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("{", r"\{").replace("}", r"\}").replace("%", r"\%")


def to_latex(t: Table) -> str:
    bold = best_in_groups(t)
    lines = [r"\begin{tabular}{l" + "c" * len(t.columns) + "}", r"\toprule",
             "Method & " + " & ".join(_latex_escape(t.header(c)) for c in t.columns) + r" \\", r"\midrule"]
    for row in t.rows:
        cells = [(r"\textbf{%s}" if (row, c) in bold else "%s") % fmt(t.ours.get((row, c))) for c in t.columns]
        lines.append(_latex_escape(row) + " & " + " & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])


def to_frame(t: Table) -> pd.DataFrame:
    return pd.DataFrame([{"method": r, **{t.header(c): fmt(t.ours.get((r, c))) for c in t.columns}} for r in t.rows])


def compare(t: Table) -> pd.DataFrame:
    """Ours vs paper per cell that either has: paper, ours, difference, and `*` where ours falls outside
    the paper's mean +- std (only where the paper reports a std)."""
    records = []
    for row in t.rows:
        for column in t.columns:
            ours, paper = t.ours.get((row, column)), t.paper.get((row, column))
            if ours is None and paper is None:
                continue
            diff = ours.mean - paper.mean if ours and paper and not math.isinf(ours.mean) else float("nan")
            outside = bool(not math.isnan(diff) and paper.std is not None and abs(diff) > paper.std)
            records.append({"method": row, "column": t.header(column), "paper": fmt(paper), "ours": fmt(ours),
                            "diff": MISSING if math.isnan(diff) else f"{diff:+.1f}",
                            "outside paper spread": "*" if outside else ""})
    return pd.DataFrame(records)
