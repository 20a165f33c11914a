"""A finished run as a small committed file: what a report needs from one trial (its settings, summary
metrics, dev and loss curves, method diagnostics), one JSON file per run, so results outlive the MLflow
store and the machine (peft's `method_comparison/results/` keeps results the same way).

A study whose experiment keeps records writes each trial's record as the trial ends (and again when
its search makes it final) under `root()` (`reports/results`, or $BENCHMARK_RECORDS); reports read an
experiment's folder with `read`. The layout puts one value
or one curve per line, so a re-run shows in `git diff` as the lines that changed.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.core.store import client

FORMAT = "zo-bench-run-record/1"
ROOT = "reports/results"  # from the repository root: committed with the code
TAGS = ("experiment", "preset", "study", "trial", "row", "method", "task", "model", "final", "dtype", "device",
        "cpu", "git_commit", "engine", "packages", "resumed", "carried_from", "carried_cpu")
CURVES = re.compile(r"^(eval/|train/loss$|dizo/|hizoo/|drift/)")  # step metrics kept whole; others: last value
NAME = re.compile(r"^(search|final)-\d+\.json$")  # a record's file name (other JSON beside them is not read)
DIGITS = 7  # significant digits kept of each curve value (float32 resolution; a record stays small)


def slug(text: str) -> str:
    return re.sub(r"[^\w.=-]+", "_", text).strip("_")


def root() -> Path:
    return Path(os.environ.get("BENCHMARK_RECORDS", ROOT))


def path_for(folder: Path, record: dict) -> Path:
    """`<folder>/<experiment>/<preset>/<task>/<row>/<search|final>-<trial>.json`: one file per trial,
    named by the study it belongs to (`<experiment>/<preset>/<model>/<task>/<row>[/final]`)."""
    tags = record["tags"]
    study = tags["study"]
    kind = "final" if study.endswith("/final") else "search"
    return (folder / slug(study.split("/")[0]) / slug(tags["preset"]) / slug(tags["task"]) / slug(tags["row"])
            / f"{kind}-{int(tags['trial']):03d}.json")


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.{DIGITS}g}")


def from_mlflow(run_id: str) -> dict:
    """The record of one MLflow run, read from the tracking store."""
    store = client()
    run = store.get_run(run_id)
    summary, curves = {}, {}
    for key, value in sorted(run.data.metrics.items()):
        if CURVES.match(key):
            history = sorted((m.step, m.value) for m in store.get_metric_history(run_id, key))
            curves[key] = [[step, _round(v)] for step, v in history]
        else:
            summary[key] = _round(value)
    tags = {k: run.data.tags[k] for k in TAGS if k in run.data.tags}
    return {"format": FORMAT, "run_id": run_id, "status": run.info.status, "start_time": run.info.start_time,
            "tags": tags, "params": dict(sorted(run.data.params.items())), "summary": summary, "curves": curves}


def render(record: dict) -> str:
    """JSON, one scalar or one curve per line."""
    lines = ["{"]
    items = list(record.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(value, dict) and value:
            inner = [f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in value.items()]
            lines.append(f"{json.dumps(key)}: {{\n" + ",\n".join(inner) + f"\n}}{end}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}{end}")
    return "\n".join(lines) + "\n}\n"


def write(record: dict, folder: Path) -> Path:
    """Write (or replace) the record's file under `folder`; atomic, so a kill never leaves half a file."""
    path = path_for(folder, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(record))
    tmp.replace(path)
    return path


def save(run_id: str, folder: Path | None = None, **tags: str) -> Path:
    """Export MLflow run `run_id` as a record under `folder` (default `root()`), with `tags` set on it."""
    record = from_mlflow(run_id)
    record["tags"].update(tags)
    return write(record, root() if folder is None else folder)


def mark(tags: dict, **new: str) -> Path | None:
    """Set `new` tags on the committed record of the trial `tags` name (study, trial, preset, task, row),
    if there is one: what a study does to a run whose MLflow store is on another machine."""
    path = path_for(root(), {"tags": tags})
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    record["tags"].update(new)
    return write(record, root())


def read(folder: str | Path) -> list[dict]:
    """Every record under `folder` (e.g. `root() / "claims"`), each checked; a file that is not a record
    fails in one line naming it."""
    out = []
    for path in sorted(p for p in Path(folder).rglob("*.json") if NAME.match(p.name)):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"{path}: not a run record ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise BenchmarkError(f"{path}: not a run record (format {FORMAT!r} expected)")
        missing = [k for k in ("run_id", "tags", "params", "summary", "curves") if k not in record]
        missing += [f"tags.{k}" for k in ("row", "task", "study", "trial") if k not in record.get("tags", {})]
        if missing:
            raise BenchmarkError(f"{path}: run record lacks {', '.join(missing)}")
        out.append(record)
    return out


def curve(record: dict, key: str = names.DEV_SCORE) -> tuple[list[int], list[float]]:
    """A curve of the record as (steps, values); empty when the run did not log it."""
    points = record["curves"].get(key, [])
    return [int(s) for s, _ in points], [float("nan") if v is None else float(v) for _, v in points]


def sync(experiment: str, folder: Path | None = None) -> int:
    """Write a record for every finished trial run of MLflow experiment `experiment` whose record is
    missing or out of date (made final since); returns how many were written. What a report calls
    before reading, so records and the store agree."""
    folder = root() if folder is None else folder
    store = client()
    found = store.get_experiment_by_name(experiment)
    if found is None:
        return 0
    written = 0
    for run in store.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and tags.trial != ''"):
        tags = {k: run.data.tags[k] for k in TAGS if k in run.data.tags}
        if not {"study", "preset", "task", "row", "trial"} <= set(tags):
            continue
        path = path_for(folder, {"tags": tags})
        if path.is_file() and json.loads(path.read_text()).get("tags", {}).get("final") == tags.get("final"):
            continue
        write(from_mlflow(run.info.run_id), folder)
        written += 1
    return written
