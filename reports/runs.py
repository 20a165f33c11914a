"""What reports read: a study's run records (`Runs`, `load`), and from MLflow its final runs, metric
histories and dev curves.

Final runs carry the tag `final=true` (each cell's best-dev configuration, one run per seed); the
columns added here (task, row, seed, model, preset) name them the way tables and figures group them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.core import names, records
from benchmark.core.errors import BenchmarkError
from benchmark.core.names import column
from benchmark.core.store import client, require_experiment
from reports.convergence import Curve


@dataclass
class Runs:
    """The records of one preset: final runs by row and seed, search runs by row, the `benchmark perf --json`
    repeats committed beside them, and `pilot`: the latest record of the row kept singly (outside both)."""

    finals: dict[str, dict[int, dict]] = field(default_factory=dict)
    search: dict[str, list[dict]] = field(default_factory=dict)
    pilot: dict | None = None
    perf: list[dict] = field(default_factory=list)  # `benchmark perf --json` repeats: method -> its row

    def seeds(self, row: str) -> dict[int, dict]:
        return self.finals.get(row, {})

    def metric(self, row: str, key: str) -> dict[int, float]:
        return {s: r["summary"][key] for s, r in self.seeds(row).items() if r["summary"].get(key) is not None}


def load(folder: Path, preset: str | None = None, beside: tuple[Path, ...] = (), single: str | None = None,
         hint: str = "run its study first") -> tuple[Runs, str]:
    """The records under `folder` (an experiment's) and the folders `beside` it, for `preset` (default: the
    one with most records); a record of row `single` is kept as `pilot`. Perf repeats: `<folder>/<preset>/perf-*.json`."""
    found = records.read(folder) + [r for extra in beside if extra.is_dir() for r in records.read(extra)]
    if not found:
        raise BenchmarkError(f"no run records under {folder}; {hint}")
    presets = [r["tags"]["preset"] for r in found]
    preset = preset or max(set(presets), key=presets.count)
    runs = Runs()
    for rec in sorted((r for r in found if r["tags"]["preset"] == preset), key=lambda r: r.get("start_time") or 0):
        row, tags = rec["tags"]["row"], rec["tags"]
        if row == single:
            runs.pilot = rec
        elif rec.get("status") == "FINISHED":
            if not tags["study"].endswith("/final"):
                runs.search.setdefault(row, []).append(rec)
            if tags.get("final") == "true":
                runs.finals.setdefault(row, {})[int(rec["params"]["seed"])] = rec  # the latest run of a seed wins
    if not runs.finals:
        raise BenchmarkError(f"no final runs of preset {preset!r} under {folder} yet")
    for path in sorted((folder / preset).glob("perf-*.json")):
        try:
            runs.perf.append(json.loads(path.read_text()))
        except ValueError as exc:
            raise BenchmarkError(f"{path}: not the output of benchmark perf --json ({exc})") from None
    return runs, preset


NAMES = {"tags.task": "task", "tags.row": "row", "tags.model": "model", "tags.preset": "preset"}


def final_runs(experiment: str, preset: str | None = None) -> pd.DataFrame:
    """MLflow's rows for the finished final runs of a study (all presets unless one is named), plus
    task, row, seed, model and preset columns; empty (with those columns) when there are none."""
    import mlflow

    require_experiment(experiment, f"run make reproduce-{experiment} first")
    where = "attributes.status = 'FINISHED' and tags.final = 'true'"
    if preset:
        where += f" and tags.preset = '{preset}'"
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=where)
    if runs.empty:
        return pd.DataFrame(columns=["run_id", "seed", *NAMES.values()])
    runs = runs.rename(columns=NAMES)
    runs["seed"] = runs["params.seed"].astype(int)
    return runs.sort_values(["task", "row", "seed"]).reset_index(drop=True)


def first_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """The lowest-seed run of every (task, row): the curves the figures draw."""
    return runs.sort_values("seed").drop_duplicates(["task", "row"], keep="first")


def history(run_id: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted((m.step, m.value) for m in client().get_metric_history(run_id, key))
    return [s for s, _ in points], [v for _, v in points]


def curve(run: pd.Series) -> Curve | None:
    """The run's dev curve and throughput; None when it has no training measurements (zero-shot)."""
    rate, forwards = run.get(column(names.STEPS_PER_S)), run.get(column(names.FORWARD_PASSES))
    if rate is None or forwards is None or math.isnan(rate) or math.isnan(forwards) or rate <= 0:
        return None
    steps, dev = history(run["run_id"], names.DEV_SCORE)
    if not steps:
        return None
    return Curve(steps, dev, float(rate), float(forwards) / max(int(run.get("params.steps") or 1), 1))
