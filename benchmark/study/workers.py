"""Workers: processes that drain a study's cells (grid queue, free-search budget, finals) until
nothing is left; `benchmark study` spawns them locally, `benchmark worker` joins from anywhere."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Any

from benchmark import tracking
from benchmark.core import records
from benchmark.core.errors import BenchmarkError
from benchmark.experiments.base import Cell
from benchmark.interrupt import Interrupt
from benchmark.study.finals import budget_left, cell_trials, enqueue_finals, tally
from benchmark.study.liveness import claim
from benchmark.study.optuna_private import next_waiting_point, pop_waiting_trial
from benchmark.study.storage import FINAL, TPE, existing_study, final_name, load, study_names
from benchmark.study.trials import PARENT, enqueue_tuned, grid_point, run_trial, suggested_point
from methods.registry import METHODS


def next_trial(study: Any, free: bool) -> Any | None:
    """A grid's next enqueued trial, or a free search's next sampled one while its budget lasts."""
    trial = (study.ask() if budget_left(study) else None) if free else pop_waiting_trial(study)
    return None if trial is None else claim(study, trial)


class Progress:
    """Where the study stands, for the log after each trial: trials finished of planned, this worker's
    elapsed time, and the study's time left (`seconds_left`) from the trial times the storage holds."""

    def __init__(self, storage: Any, cells: list[Cell]) -> None:
        self.storage, self.cells, self.began = storage, cells, time.time()

    def line(self) -> str:
        tallies = [(cell, *tally(self.storage, cell)) for cell in self.cells]
        done, planned = sum(d for _, d, _ in tallies), sum(p for _, _, p in tallies)
        trials = {cell.name: cell_trials(self.storage, cell) for cell in self.cells}
        left_cells = [(max(p - d, 0), trial_seconds(trials[cell.name]), trained_steps(cell)) for cell, d, p in tallies]
        running = sum(t.state.name == "RUNNING" for ts in trials.values() for t in ts)  # the other workers at work
        left = seconds_left(left_cells, workers=running + 1)  # + this one, between trials
        estimate = "time left unknown" if left is None else f"~{_hours(left)} left"
        return f"[{done}/{planned} trials; {_hours(time.time() - self.began)} elapsed here, {estimate}]"


def trained_steps(cell: Cell) -> int:
    """The training steps a trial of the cell runs: the measure of work the estimate scales (0: zero-shot)."""
    return cell.steps if METHODS.get(cell.row.method).trains else 0


def trial_seconds(trials: list[Any]) -> list[float]:
    """Wall seconds of the completed trials, claim to completion, as the storage stamped them."""
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
            if t.state.name == "COMPLETE" and t.datetime_start and t.datetime_complete]


def seconds_left(cells: list[tuple[int, list[float], int]], workers: int) -> float | None:
    """The study's wall seconds left, from (trials left, seconds of its finished trials, training steps a
    trial) per cell: a cell's trials at its own mean time (FZOO's nine forwards a step cost it four of
    MeZO's trials), a cell with none finished at the seconds per training step of all that have, times
    its steps; shared among the workers. None while a cell with trials left has no time to go by."""
    measured = [(sum(times), len(times) * steps) for _, times, steps in cells if times and steps]
    per_step = sum(s for s, _ in measured) / sum(n for _, n in measured) if measured else None
    total = 0.0
    for left, times, steps in cells:
        if not left:
            continue
        if times:
            total += left * sum(times) / len(times)
        elif steps and per_step is None:
            return None
        elif steps:
            total += left * per_step * steps
    return total / max(workers, 1)


def _hours(seconds: float) -> str:
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def next_seed(storage: Any, cell: Cell) -> float:
    """The seed of the cell's next waiting final trial (inf: none): the pairs' round takes the lowest first,
    so a pair whose member was interrupted is completed before either row starts the next seed."""
    study = existing_study(storage, final_name(cell))
    point = next_waiting_point(study) if study is not None else None
    return math.inf if point is None else int(point.get("seed", 0))


def seed_order(storage: Any, cells: list[Cell]) -> list[Cell]:
    """The cells by their next waiting final seed, the rows' order among equals (`next_seed`)."""
    return sorted(cells, key=lambda c: next_seed(storage, c))


def drain(storage: Any, cells: list[Cell], log=print) -> dict[str, int]:
    """Run every cell's pending trials (grid queue, free-search budget, finals) until none is left, one
    trial per cell in turn: a study stopped anywhere has its runs spread over every row (each row's first
    grid point first, then its next). A row's seeds beyond the preset's (`Cell.extra_seeds`: the pairs a
    claim compares) wait until no other trial is pending, so they never hold back another row's finals
    and the pairs go on alone last, where a stopping rule on their spread can end them."""
    tracking.git_commit(), tracking.engine_version()  # pin the commit and engine of the code this worker loaded
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    progress = Progress(storage, cells)
    waiting: set[str] = set()
    with Interrupt() as interrupt:

        def one_round(extra: bool) -> list[Cell]:  # the cells that ran a trial this round
            order = seed_order(storage, cells) if extra else cells  # the pairs in seed order
            return [c for c in order if _one_trial(storage, c, counts, interrupt, log, progress, waiting, extra)]

        while one_round(extra=False) or one_round(extra=True):
            pass
    return counts


def _one_trial(storage: Any, cell: Cell, counts: dict[str, int], interrupt: Interrupt, log, progress: Progress,
               waiting: set[str], extra: bool) -> bool:
    """Run the cell's next pending grid, free-search or final trial; False when it has none now (or,
    unless `extra`, when its next is one of its extra seeds). A tuned_by cell first takes its source
    cell's best point (and waits, skipped, while the source has none)."""
    parent = load(storage, cell.name).user_attrs[PARENT]
    if cell.source and not enqueue_tuned(storage, cell):
        if cell.name not in waiting:
            log(f"{cell.name}: waiting for {cell.source} to choose its best point")
            waiting.add(cell.name)
        return False
    for name in study_names(cell):
        if name == final_name(cell):
            enqueue_finals(storage, cell)  # whoever finishes the search enqueues the seeds
        study = existing_study(storage, name)
        if study is None:  # not created (no free search, or the search is not finished)
            continue
        final, free = name.endswith("/" + FINAL), name.endswith("/" + TPE)
        if final and not extra and (next_waiting_point(study) or {}).get("seed") in cell.extra_seeds:
            continue
        interrupt.check()
        trial = next_trial(study, free)
        if trial is None:
            continue
        point, seed = suggested_point(trial, cell) if free else grid_point(study, trial, cell, final)
        began = time.time()
        outcome = run_trial(study, trial, cell, parent, point, seed, final, interrupt)
        counts[outcome.state] += 1
        if cell.records and outcome.run_id and outcome.state != "FAIL":
            records.save(outcome.run_id)
        ran = {**point, **cell.row.sets}  # the row's own settings win over a borrowed (tuned_by) point
        log(f"{name} trial {trial.number} {ran} seed {seed}: {outcome.state}"
            f"{' (' + outcome.reason + ')' if outcome.reason else ''} in {time.time() - began:.0f} s "
            f"{progress.line()}")
        return True
    return False


def spawn_workers(experiment: str, storage_url: str, n: int) -> list[subprocess.Popen]:
    """N worker processes: one GPU each when there are GPUs, else an equal share of the CPU threads."""
    import torch

    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = []
    for i in range(n):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        else:
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "benchmark.cli", "worker", experiment, "--storage", storage_url]
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def wait(procs: list[subprocess.Popen]) -> None:
    try:
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        for proc in procs:  # they got the SIGINT too; give them time to record it
            proc.wait()
        raise
    failed = [p.returncode for p in procs if p.returncode not in (0,)]
    if failed:
        raise BenchmarkError(f"{len(failed)} worker(s) exited with status {failed}; rerun the command to resume")
