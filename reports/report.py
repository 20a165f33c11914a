"""`benchmark report EXPERIMENT`: every table and figure of a study, and an index page, from its run records
(`reports/results/<experiment>/`: committed, so a report renders on a fresh clone; the CLI first writes
the records of runs the MLflow store has and the folder lacks).

Writes `<out>/<experiment>/<preset>/`: `<table>.{md,tex,csv}`, `compare.{md,csv}` (ours vs paper),
figures (PNG + PDF), `optuna/` slice plots, and `report.md` linking them with the runs' provenance
(git commits, devices, package versions, MLflow run ids). `<out>/index.md` links every report.
"""
from __future__ import annotations

import datetime as dt
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd

from benchmark.core import names, records
from benchmark.core.names import column
from benchmark.experiments.base import Experiment
from reports import summary
from reports.figures import optuna_views, write_figures
from reports.runs import final_runs
from reports.tables import Table, build, compare, to_frame, to_latex, to_markdown

REPORT_PACKAGES = ("mlflow", "optuna", "pandas", "matplotlib")


def _pick_preset(runs: pd.DataFrame, preset: str | None, presets: list[str]) -> str:
    if preset is not None:
        return preset
    present = runs["preset"].value_counts()
    return str(present.index[0]) if len(present) else presets[0]


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    return runs[name] if name in runs else pd.Series(["not recorded"] * len(runs), index=runs.index)


def provenance(runs: pd.DataFrame) -> str:
    """Where the numbers came from: code, hardware, packages, and every run id."""
    lines = [f"- final runs: {len(runs)}"]
    for label, tag in (("git commits", "tags.git_commit"), ("devices", "tags.device"), ("dtypes", "tags.dtype"),
                       ("packages", "tags.packages")):
        counts = _column(runs, tag).fillna("not recorded").value_counts()
        lines.append(f"- {label}: " + "; ".join(f"`{v}` ({n} runs)" for v, n in counts.items()))
    for label, metric, scale, unit in (("train time (devices x hours)", column(names.TRAIN_HOURS), 1, "h"),
                                       ("wall time incl. evaluation", column(names.WALL_S), 1 / 3600, "h")):
        if metric in runs:
            lines.append(f"- {label}, summed over final runs: {runs[metric].sum() * scale:.3f} {unit}")
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in REPORT_PACKAGES)
    lines.append(f"- report written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with {versions}")
    ids = pd.DataFrame({"row": runs["row"], "task": runs["task"], "seed": runs["seed"], "MLflow run id": runs["run_id"],
                        "commit": _column(runs, "tags.git_commit"), "device": _column(runs, "tags.device")})
    return "\n".join(lines) + "\n\n" + summary.to_markdown(ids.reset_index(drop=True))


def _write_table(t: Table, folder: Path) -> str:
    md = to_markdown(t)
    (folder / f"{t.name}.md").write_text(md + "\n")
    (folder / f"{t.name}.tex").write_text(to_latex(t) + "\n")
    to_frame(t).to_csv(folder / f"{t.name}.csv", index=False)
    return md


def _links(paths: list[Path], folder: Path) -> list[str]:
    return [f"- [{p.stem}]({p.relative_to(folder)}) ([pdf]({p.with_suffix('.pdf').relative_to(folder)}))"
            for p in paths if p.suffix == ".png"]


def index_page(title: str, texts: list[tuple[Table, str]], figures: list[Path], views: list[Path], studies: str,
               runs: pd.DataFrame, folder: Path) -> str:
    """report.md: the tables inline, every file linked, then the provenance."""
    page = [f"# {title}", "",
            "Each cell's final runs (its best dev configuration; accuracy columns are test score x 100), ours "
            "beside the paper's in [compare.md](compare.md) (`*`: outside the paper's mean +- std).", ""]
    for t, md in texts:
        page += [f"## {t.title}", "", md, "", f"Files: [{t.name}.md]({t.name}.md), [{t.name}.tex]({t.name}.tex), "
                 f"[{t.name}.csv]({t.name}.csv)", ""]
    page += ["## Figures", ""] + (_links(figures, folder) or ["- none: no final runs with the figures' rows yet"])
    page += ["", f"## Optuna studies ({studies})", ""]
    page += _links(views, folder) or ["- none has trials that vary a hyperparameter (a single-point grid has "
                                      "nothing to plot)"]
    page += ["", "## Provenance", "", provenance(runs) if not runs.empty else "- no final runs yet", ""]
    return "\n".join(page)


Studies = Callable[[str], tuple[list, str]]  # preset -> its Optuna studies and where they were read from


def no_studies(preset: str) -> tuple[list, str]:
    return [], "no Optuna storage given"


def report(definition: Experiment, out: str, preset: str | None = None, studies: Studies = no_studies,
           folder: Path | None = None) -> str:
    """Write the experiment's report folder and the index from the run records under `folder` (default:
    `<records root>/<experiment>`); return the tables as Markdown. `studies` hands over the preset's Optuna
    studies for the slice plots (the CLI reads them from the storage)."""
    experiment = definition.name
    runs = final_runs(folder or records.root() / experiment)
    preset = _pick_preset(runs, preset, list(definition.presets))
    runs = runs[runs["preset"] == preset]
    cells = definition.cells(preset)
    rows = list(dict.fromkeys(c.row.label for c in cells))
    tasks = list(dict.fromkeys(c.task_name for c in cells))  # as runs are tagged: a task file by its name
    folder = Path(out) / experiment / preset
    folder.mkdir(parents=True, exist_ok=True)

    tables = build(experiment, rows, tasks, runs, f"make reproduce-{experiment} PRESET={preset}")
    texts = [(t, _write_table(t, folder)) for t in tables]
    comparison = pd.concat([compare(t).assign(table=t.name) for t in tables], ignore_index=True)
    if len(tables) == 1:
        comparison = comparison.drop(columns="table")
    comparison.to_csv(folder / "compare.csv", index=False)
    compare_md = summary.to_markdown(comparison)
    (folder / "compare.md").write_text(compare_md + "\n")
    figures = write_figures(runs, folder)
    found, source = studies(preset)
    views = optuna_views(found, folder / "optuna")

    page = index_page(f"{experiment} ({preset}): {definition.description}", texts, figures, views,
                      source, runs, folder)
    (folder / "report.md").write_text(page)
    write_index(Path(out))
    shown = "\n\n".join(f"{t.title}\n\n{md}" if len(texts) > 1 else md for t, md in texts)
    return (f"{experiment} ({preset}, final runs)\n\n{shown}\n\nours vs paper:\n\n{compare_md}\n\n"
            + "\n".join(f"figure: {p}" for p in figures + views if p.suffix == ".png") + f"\nindex: {folder / 'report.md'}")


def write_index(out: Path) -> Path:
    """`<out>/index.md`: a link to every experiment report under `out`."""
    pages = sorted(out.glob("*/*/report.md"))
    lines = ["# Reports", ""] + [f"- [{p.parent.parent.name} ({p.parent.name})]({p.relative_to(out)})" for p in pages]
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index

