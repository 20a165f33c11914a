"""The paper's accuracy tables from MLflow, with the published numbers beside ours.

Ours: the final runs (tag `final=true`: each cell's best-dev configuration, one run per seed) of a
study, test score x 100 as the paper prints it, `mean (std)` over seeds where there are several.
Paper: `reports/paper/*.csv`. Rows are matched by the experiment's row labels (the paper's), columns
by task (offline tasks against their analogue: rt-polarity vs SST-2, rt-5way vs SST-5).
Reads MLflow and pandas only, never torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.tracking import tracking_uri
from reports.paper import Value, parse_cell, table

PAPER_COLUMNS = {"sst2": "SST-2", "sst5": "SST-5", "snli": "SNLI", "mnli": "MNLI", "rte": "RTE", "trec": "TREC",
                 "cb": "CB", "boolq": "BoolQ", "wsc": "WSC", "wic": "WIC", "multirc": "MultiRC", "squad": "SQuAD",
                 "drop": "DROP"}
ANALOGUES = {"rt-polarity": "SST-2", "rt-5way": "SST-5"}  # the offline corpora SST was built from
MISSING = "-"


@dataclass(frozen=True)
class Spec:
    """How an experiment's table lines up with the paper's CSV."""

    paper: str  # reports.paper table name
    label: Callable[[dict], str | None] = lambda row: row["method"]  # paper row -> our row label (None: skip)
    groups: tuple[tuple[str, ...], ...] = ()  # rows compared for bold (the paper bolds within groups)


def _table3_label(row: dict) -> str:
    return "Zero-shot" if row["k"] == "0" else f"{row['method']} k={row['k']}"


SPECS: dict[str, Spec] = {
    "table4": Spec("table4", groups=(("MeZO", "HiZOO", "DiZO"), ("MeZO LoRA", "HiZOO LoRA", "DiZO LoRA"))),
    "table5": Spec("table5", groups=(("MeZO", "HiZOO", "DiZO"), ("MeZO LoRA", "HiZOO LoRA", "DiZO LoRA"))),
    "table3": Spec("table3", label=_table3_label,
                   groups=tuple((f"MeZO k={k}", f"MeZO LoRA k={k}", f"DiZO k={k}", f"DiZO LoRA k={k}")
                                for k in (16, 512))),
    "table12": Spec("table12_13", label=lambda r: r["method"] if r["model"] == "Llama3-3B" else None,
                    groups=(("MeZO", "DiZO"),)),
    "table13": Spec("table12_13", label=lambda r: r["method"] if r["model"] == "Llama3-8B" else None,
                    groups=(("MeZO", "DiZO"),)),
}


@dataclass
class Table:
    """Rows x task columns of `Value`s (ours) and the paper's, plus what a reader needs below it."""

    rows: list[str]
    columns: list[str]  # our task names
    ours: dict[tuple[str, str], Value] = field(default_factory=dict)
    paper: dict[tuple[str, str], Value] = field(default_factory=dict)
    groups: tuple[tuple[str, ...], ...] = ()
    footnotes: list[str] = field(default_factory=list)

    def paper_column(self, task: str) -> str | None:
        return PAPER_COLUMNS.get(task) or ANALOGUES.get(task)

    def header(self, task: str) -> str:
        return f"{task} (vs {ANALOGUES[task]})" if task in ANALOGUES else self.paper_column(task) or task


def search_final(experiment: str, preset: str | None = None) -> pd.DataFrame:
    """MLflow's rows for the finished final runs of a study (all presets unless one is named)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(experiment) is None:
        raise BenchmarkError(f"no MLflow experiment {experiment!r} in {mlflow.get_tracking_uri()}; "
                             f"run make reproduce-{experiment} first")
    where = "attributes.status = 'FINISHED' and tags.final = 'true'"
    if preset:
        where += f" and tags.preset = '{preset}'"
    return mlflow.search_runs(experiment_names=[experiment], filter_string=where)


def final_runs(experiment: str, preset: str | None = None) -> pd.DataFrame:
    """One row per finished final run: model, task, row, seed, test (x100)."""
    runs = search_final(experiment, preset)
    if runs.empty:
        return pd.DataFrame(columns=["model", "task", "row", "seed", "test", "preset"])
    return pd.DataFrame({"model": runs["tags.model"], "task": runs["tags.task"], "row": runs["tags.row"],
                         "seed": runs["params.seed"].astype(int), "test": runs["metrics.test/score"] * 100,
                         "preset": runs["tags.preset"]})


def _mean_std(values: list[float]) -> Value:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return Value(mean)
    return Value(mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))


def build(experiment: str, rows: list[str], tasks: list[str], runs: pd.DataFrame, make_hint: str) -> Table:
    spec = SPECS.get(experiment)
    out = Table(rows=rows, columns=tasks, groups=spec.groups if spec else ())
    for (task, row), group in runs.groupby(["task", "row"]):
        out.ours[(row, task)] = _mean_std(group.sort_values("seed")["test"].tolist())
    if spec is not None:
        for record in table(spec.paper).to_dict("records"):
            label = spec.label(record)
            if label is None:
                continue
            for task in tasks:
                column = out.paper_column(task)
                value = parse_cell(record.get(column, "")) if column else None
                if value is not None:
                    out.paper[(label, task)] = value
    if any((r, t) not in out.ours for r in rows for t in tasks):
        out.footnotes.append(f"{MISSING}: no finished final run yet; run `{make_hint}` (it resumes).")
    if any(t in ANALOGUES for t in tasks):
        out.footnotes.append("Offline analogues: rt-polarity is compared with SST-2 and rt-5way with SST-5 (the "
                             "Rotten Tomatoes sentences SST was built from; a different model and test set).")
    if any(v.std is not None for v in out.ours.values()):
        out.footnotes.append("mean (std) over seeds, as the paper reports them.")
    return out


def fmt(value: Value | None) -> str:
    if value is None:
        return MISSING
    return f"{value.mean:.1f}" if value.std is None else f"{value.mean:.1f} ({value.std:.1f})"


def best_in_groups(t: Table) -> set[tuple[str, str]]:
    """Cells that are the best of their group in their column (ties all bold), as the paper marks them."""
    bold = set()
    for group in t.groups or (tuple(t.rows),):
        for task in t.columns:
            cells = [(r, t.ours[(r, task)].mean) for r in group if (r, task) in t.ours]
            if cells:
                top = max(v for _, v in cells)
                bold |= {(r, task) for r, v in cells if v == top}
    return bold


def to_markdown(t: Table) -> str:
    bold = best_in_groups(t)
    lines = ["| method | " + " | ".join(t.header(c) for c in t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
    for row in t.rows:
        cells = [f"**{fmt(t.ours.get((row, c)))}**" if (row, c) in bold else fmt(t.ours.get((row, c))) for c in t.columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"{note}" for note in t.footnotes])


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


def compare(t: Table) -> pd.DataFrame:
    """Ours vs paper per cell: paper, ours, difference, and `outside` where ours falls outside the
    paper's mean +- std (only where the paper reports a std)."""
    records = []
    for row in t.rows:
        for task in t.columns:
            ours, paper = t.ours.get((row, task)), t.paper.get((row, task))
            diff = ours.mean - paper.mean if ours and paper else float("nan")
            outside = bool(ours and paper and paper.std is not None and abs(diff) > paper.std)
            records.append({"method": row, "task": t.header(task), "paper": fmt(paper), "ours": fmt(ours),
                            "diff": "-" if diff != diff else f"{diff:+.1f}", "outside paper spread": "*" if outside else ""})
    return pd.DataFrame(records)


def _pick_preset(runs: pd.DataFrame, preset: str | None, presets: list[str]) -> str:
    if preset is not None:
        return preset
    present = runs["preset"].value_counts()
    return str(present.index[0]) if len(present) else presets[0]


def report(experiment: str, out: str, preset: str | None = None) -> str:
    """Write <out>/<experiment>/<preset>/table.{md,tex,csv} and compare.{md,csv}; return the Markdown."""
    from pathlib import Path

    from benchmark.registry import EXPERIMENTS
    from reports import summary

    definition = EXPERIMENTS.get(experiment)
    runs = final_runs(experiment)
    preset = _pick_preset(runs, preset, list(definition.presets))
    cells = definition.cells(preset)
    rows = list(dict.fromkeys(c.row.label for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    t = build(experiment, rows, tasks, runs[runs["preset"] == preset],
              f"make reproduce-{experiment} PRESET={preset}")
    folder = Path(out) / experiment / preset
    folder.mkdir(parents=True, exist_ok=True)
    md = to_markdown(t)
    (folder / "table.md").write_text(md + "\n")
    (folder / "table.tex").write_text(to_latex(t) + "\n")
    pd.DataFrame([{"method": r, **{t.header(c): fmt(t.ours.get((r, c))) for c in tasks}} for r in rows]).to_csv(
        folder / "table.csv", index=False)
    comparison = compare(t)
    comparison.to_csv(folder / "compare.csv", index=False)
    compare_md = summary.to_markdown(comparison)
    (folder / "compare.md").write_text(compare_md + "\n")
    from reports.figures import write_figures

    written = write_figures(experiment, preset, folder)
    figures = "\n".join(f"figure: {p}" for p in written if p.suffix == ".png")
    return f"{experiment} ({preset}, test x 100, final runs)\n\n{md}\n\nours vs paper:\n\n{compare_md}\n\n{figures}"

