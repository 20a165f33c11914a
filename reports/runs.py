"""What reports read: a study's run records, as `Runs` (by row and seed) or as a table of final runs
(`final_runs`, shaped like MLflow's search results) with their curves. Never MLflow itself: the CLI
writes the records MLflow has and the folder lacks (`benchmark.core.records.sync`) before a report reads.

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

    def perf_hardware(self) -> str:
        """What the perf repeats ran on (each row's `hardware`; repeats older than that field: "not recorded")."""
        return ", ".join(sorted({row.get("hardware", "not recorded") for rep in self.perf for row in rep.values()}))

    def perf_values(self, method: str, key: str) -> list[float]:
        """One `benchmark perf` measure of a method, one value per committed repeat that has it: the one reader
        of the repeats, so the leaderboard and the claims report count hours from the same numbers."""
        return [rep[method][key] for rep in self.perf if method in rep and rep[method].get(key) is not None]

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


def frame(found: list[dict]) -> pd.DataFrame:
    """Run records as a table shaped like `mlflow.search_runs`' (run_id, status, `tags.*`, `params.*`,
    `metrics.*`: a summary value, or a curve's last), plus task, row, model, preset, seed, and the record
    itself (`record`: its curves, for `history`)."""
    rows = []
    for rec in found:
        row = {"run_id": rec["run_id"], "status": rec.get("status"), "record": rec}
        row.update({f"tags.{k}": v for k, v in rec["tags"].items()})
        row.update({f"params.{k}": v for k, v in rec["params"].items()})
        row.update({column(k): (math.nan if v is None else v) for k, v in rec["summary"].items()})
        row.update({column(k): (math.nan if points[-1][1] is None else points[-1][1])
                    for k, points in rec["curves"].items() if points})
        rows.append(row)
    return pd.DataFrame(rows).rename(columns=NAMES) if rows else pd.DataFrame(columns=["run_id", "record", *NAMES.values()])


def final_runs(folder: Path, preset: str | None = None) -> pd.DataFrame:
    """The finished final runs among the run records under `folder` (an experiment's; all presets unless
    one is named), with task, row, seed, model and preset columns; empty (with those columns) when none."""
    found = [r for r in (records.read(folder) if folder.is_dir() else [])
             if r.get("status") == "FINISHED" and r["tags"].get("final") == "true"
             and (preset is None or r["tags"].get("preset") == preset)]
    runs = frame(found)
    if runs.empty:
        return pd.DataFrame(columns=["run_id", "record", "seed", *NAMES.values()])
    runs["seed"] = runs["params.seed"].astype(int)
    return runs.sort_values(["task", "row", "seed"]).reset_index(drop=True)


def first_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """The lowest-seed run of every (task, row): the curves the figures draw."""
    return runs.sort_values("seed").drop_duplicates(["task", "row"], keep="first")


def history(run: pd.Series, key: str) -> tuple[list[int], list[float]]:
    """A curve of the run's record (empty when the run did not log it)."""
    return records.curve(run["record"], key)


def curve(run: pd.Series) -> Curve | None:
    """The run's dev curve and throughput; None when it has no training measurements (zero-shot)."""
    rate, forwards = run.get(column(names.STEPS_PER_S)), run.get(column(names.FORWARD_PASSES))
    if rate is None or forwards is None or math.isnan(rate) or math.isnan(forwards) or rate <= 0:
        return None
    steps, dev = history(run, names.DEV_SCORE)
    if not steps:
        return None
    return Curve(steps, dev, float(rate), float(forwards) / max(int(run.get("params.steps") or 1), 1))
