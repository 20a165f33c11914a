"""A running trial's checkpoint carried beside a committed study's journal, so that a study whose session ends
mid-trial resumes that trial on the next machine (a fresh MLflow store, no `runs/`) instead of running it again.

Why: the leaderboard study's trials run for hours on a CPU, its sessions end wherever they are, and the next one
may be another machine. A ZO run's checkpoint is its seed log and a small state (tens of kilobytes), so it can
travel with the journal in git.

- `save`: each time a committed study's run writes a checkpoint, its state, seed log and the run's partial
  record (tags, params, curves so far) are copied to `<records>/<experiment>/carried/<run_id>/`.
- A trial found stale is requeued to resume its run where a local or a carried checkpoint exists
  (`liveness.requeue`); `restore` then makes the run again in this store from the partial record (under the
  cell's parent run, its start time and curves up to the checkpoint's step, tag `carried_from`) and puts the
  checkpoint under the new run's id, which the trial resumes.
- `drop`: the carried copies go once their trial has ended (complete, pruned or failed).
The rest of the run is computed on the new machine: its `cpu` tag names that machine's CPU, `carried_cpu` the one
that ran the steps before.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from benchmark import checkpoint, seedlog
from benchmark.core import records
from benchmark.core.errors import first_line
from benchmark.core.store import client

FOLDER = "carried"
RECORD = "record.json"
MAX_BYTES = 32 * 2**20  # a checkpoint larger than this (first-order weights and moments) stays on its machine
_too_large: set[str] = set()  # runs already said to be too large to carry


def carried_dir(experiment: str, run_id: str) -> Path:
    return records.root() / experiment / FOLDER / run_id


def exists(experiment: str, run_id: str) -> bool:
    directory = carried_dir(experiment, run_id)
    return (directory / checkpoint.STATE).is_file() and (directory / RECORD).is_file()


def _copy(src: Path, dst: Path) -> None:
    """Replace `dst` with `src` atomically, keeping its modification time (what `save` compares)."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copy2(src, tmp)
    tmp.replace(dst)


def save(experiment: str, run_id: str) -> bool:
    """Carry the run's current checkpoint (state first: a seed log may run ahead of its state, never behind)
    and its partial record; False when there is nothing new."""
    src, dst = checkpoint.checkpoint_dir(run_id), carried_dir(experiment, run_id)
    state = src / checkpoint.STATE
    if not state.is_file():
        return False
    if (dst / checkpoint.STATE).is_file() and (dst / checkpoint.STATE).stat().st_mtime_ns == state.stat().st_mtime_ns:
        return False
    size = sum(f.stat().st_size for f in (state, src / seedlog.FILE) if f.is_file())
    if size > MAX_BYTES:
        if run_id not in _too_large:
            _too_large.add(run_id)
            print(f"run {run_id}: its checkpoint ({size / 2**20:.0f} MiB) is too large to carry with the journal "
                  f"(limit {MAX_BYTES // 2**20} MiB); a session ending mid-run restarts it", file=sys.stderr)
        return False
    dst.mkdir(parents=True, exist_ok=True)
    _copy(state, dst / checkpoint.STATE)
    if (src / seedlog.FILE).is_file():
        _copy(src / seedlog.FILE, dst / seedlog.FILE)
    seedlog.write_atomic(dst / RECORD, records.render(records.from_mlflow(run_id)).encode())
    return True


def save_or_say(experiment: str, run_id: str) -> None:
    """`save`, where a failure (a full disk, a locked store) costs the carried copy, never the run: one line."""
    try:
        save(experiment, run_id)
    except Exception as exc:
        print(f"run {run_id}: its checkpoint was not carried ({first_line(exc)[:200]})", file=sys.stderr)


def restore(experiment: str, run_id: str, parent_run_id: str) -> str:
    """Make carried run `run_id` again in this MLflow store, under `parent_run_id`, with its checkpoint in
    place; returns the new run's id, for the trial to resume."""
    from mlflow.entities import Metric, Param

    src = carried_dir(experiment, run_id)
    record = json.loads((src / RECORD).read_text())
    store = client()
    tags = {**record["tags"], "carried_from": run_id, "mlflow.parentRunId": parent_run_id}
    experiment_id = store.get_run(parent_run_id).info.experiment_id
    new = store.create_run(experiment_id, start_time=record["start_time"], tags=tags,
                           run_name=f"{tags.get('method')}-{tags.get('task')}-s{record['params'].get('seed')}").info.run_id
    params = [Param(k, str(v)) for k, v in record["params"].items()]
    for start in range(0, len(params), 100):  # MLflow's per-batch param limit
        store.log_batch(new, params=params[start:start + 100])
    directory = checkpoint.checkpoint_dir(new)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (checkpoint.STATE, seedlog.FILE):
        if (src / name).is_file():
            shutil.copy2(src / name, directory / name)
    step = checkpoint.load(new).progress.step  # curves past it are computed again on resuming
    store.set_tag(new, "carried_cpu", f"{record['tags'].get('cpu', 'not recorded')} (steps 0-{step})")
    metrics = [Metric(key, value, record["start_time"], s) for key, curve in record["curves"].items()
               for s, value in curve if s <= step and value is not None]
    for start in range(0, len(metrics), 1000):
        store.log_batch(new, metrics=metrics[start:start + 1000])
    return new


def drop(experiment: str, *run_ids: str | None) -> None:
    for run_id in filter(None, run_ids):
        shutil.rmtree(carried_dir(experiment, run_id), ignore_errors=True)
