"""Optuna studies for an experiment: one study per table cell, drained by any number of workers.

Fixed grids are enqueued once (`skip_if_exists`) by `benchmark study`; workers claim WAITING trials
atomically (the storage's compare-and-set), so no grid point runs twice. After the grid, each
cell's best-dev configuration is evaluated over the preset's seeds in a second study
(`<cell>/final`), drained the same way. MLflow: one parent run per cell study, one child run per
trial; the best trial's run and the extra seeds' runs are tagged `final=true`.

Faults: a trial whose worker died (same host and dead pid, or no heartbeat for `STALE_S`) is marked
FAIL with reason `stale` and re-enqueued; NaN/inf loss prunes (reason `nan`); OOM fails that trial
(reason `oom`) and the study goes on; Ctrl-C re-enqueues the running trial and stops. Running the
same command again resumes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import tracking
from benchmark.errors import BenchmarkError
from benchmark.experiments.base import Cell, Experiment

JOURNAL_DIR = Path("runs/optuna")
HEARTBEAT_S = 20.0
STALE_S = 600.0  # a RUNNING trial without a heartbeat this long is presumed dead (other hosts)
FINAL = "final"


def default_storage_url(experiment: str) -> str:
    return str(JOURNAL_DIR / f"{experiment}.journal")


def open_storage(url: str) -> Any:
    """A journal file (default; safe for several processes on one machine) or an RDB URL."""
    import optuna

    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BenchmarkError(f"cannot open Optuna storage {url}: {first}") from None
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


# ---- validation: every point of every cell, before any trial ------------------------------------

def trial_config(cell: Cell, point: dict[str, str], seed: int = 0, extra: dict[str, str] | None = None):
    from benchmark.runner import build_run

    return build_run(cell.row.method, cell.task, {**cell.settings(point), **(extra or {})}, model=cell.model,
                     steps=cell.steps, seed=seed, experiment=cell.experiment)


def validate(cells: list[Cell]) -> None:
    """Build every trial's config and sample every distinct dataset once: config and data errors
    surface here, in one line, before a study is created."""
    from benchmark.models import model_kind
    from benchmark.registry import TASKS
    from tasks.sampling import sample_splits

    sampled: set[tuple] = set()
    for cell in cells:
        for point in cell.points():
            try:
                cfg, _ = trial_config(cell, point)
            except BenchmarkError as exc:
                raise BenchmarkError(f"{cell.name} {point}: {exc}") from None
            key = (cfg.task, cfg.model, cfg.template, cfg.num_train, cfg.num_dev, cfg.num_test, cfg.k)
            if key not in sampled:
                sampled.add(key)
                task = TASKS.get(cfg.task)
                _, template = task.template(model_kind(cfg.model), cfg.template)
                try:
                    sample_splits(task, template.render, 0, cfg.num_train, cfg.num_dev, cfg.num_test, cfg.k)
                except BenchmarkError as exc:
                    raise BenchmarkError(f"{cell.name}: {exc}") from None


# ---- studies -------------------------------------------------------------------------------------

def _study(storage: Any, name: str, create: bool = False) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if create:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    return optuna.load_study(study_name=name, storage=storage)


def enqueue_grid(storage: Any, cell: Cell) -> Any:
    study = _study(storage, cell.name, create=True)
    study.set_user_attr("experiment", cell.experiment)
    for point in cell.points():
        study.enqueue_trial(point, skip_if_exists=True)
    return study


PARENT = "mlflow_parent_run_id"


def ensure_parent_run(study: Any, cell: Cell, experiment_id: str) -> str:
    """The cell's MLflow parent run (its grid and final trials are children), created once."""
    if PARENT not in study.user_attrs:
        tags = {"method": cell.row.method, "task": cell.task, "model": cell.model, "preset": cell.preset,
                "study": study.study_name, "row": cell.row.label}
        study.set_user_attr(PARENT, tracking.create_run(experiment_id, study.study_name, tags))
    return study.user_attrs[PARENT]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_stale(study: Any) -> int:
    """FAIL (reason `stale`) and re-enqueue RUNNING trials whose worker is gone; returns how many."""
    from optuna.trial import TrialState

    host, now, reclaimed = socket.gethostname(), time.time(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
        w_host, _, w_pid = worker.rpartition(":")
        dead = (w_host == host and w_pid.isdigit() and not _alive(int(w_pid))) or now - beat > STALE_S
        if not dead:
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "reason", "stale")
        study.tell(trial.number, state=TrialState.FAIL)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            tracking.terminate(run_id, "KILLED", reason="stale")
        study.enqueue_trial(trial.system_attrs.get("fixed_params", trial.params))
        reclaimed += 1
    return reclaimed


def claim(study: Any) -> Any | None:
    """Atomically take one WAITING trial (the storage's compare-and-set), or None when drained.
    `Study.ask` would create a fresh sampled trial when the queue is empty; a grid must not."""
    import optuna

    trial_id = study._pop_waiting_trial_id()
    return None if trial_id is None else optuna.trial.Trial(study, trial_id)


class Heartbeat:
    """Stamps the trial every HEARTBEAT_S seconds while it runs, so other processes can tell it is alive."""

    def __init__(self, study: Any, trial_id: int) -> None:
        self.study, self.trial_id, self.stop = study, trial_id, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            self.study._storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())

    def __enter__(self) -> "Heartbeat":
        storage = self.study._storage
        storage.set_trial_user_attr(self.trial_id, "worker", f"{socket.gethostname()}:{os.getpid()}")
        storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def _fixed(study: Any, trial: Any) -> dict:
    """The grid point (and seed) a claimed trial was enqueued with."""
    return study._storage.get_trial(trial._trial_id).system_attrs.get("fixed_params", {})


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    reason: str = ""


def run_trial(study: Any, trial: Any, cell: Cell, parent_run_id: str, seed: int = 0,
              final: bool = False) -> Outcome:
    """One trial = one training run (an MLflow child run); tells Optuna how it ended."""
    from optuna.trial import TrialState

    from benchmark.runner import Stopped, failure_reason, run

    fixed = _fixed(study, trial)
    point = {k: str(v) for k, v in fixed.items() if k != "seed"}
    seed = int(fixed.get("seed", seed))
    for key, value in point.items():  # record the point as the trial's params, over the grid's choices
        trial.suggest_categorical(key, list(cell.grid.get(key, (value,))))
    cfg, hp = trial_config(cell, point, seed)
    tags = {"preset": cell.preset, "study": study.study_name, "trial": str(trial.number), "row": cell.row.label,
            **({"final": "true"} if final else {})}

    def started(run_id: str) -> None:
        trial.set_user_attr("mlflow_run_id", run_id)

    def prune(metrics: dict[str, float], step: int) -> None:
        if "eval/dev_score" in metrics and not final:
            trial.report(metrics["eval/dev_score"], step)
            if trial.should_prune():
                raise Stopped(f"pruned at step {step}", reason="pruned")

    with Heartbeat(study, trial._trial_id):
        try:
            result = run(cfg, hp, progress=False, parent_run_id=parent_run_id, extra_tags=tags, on_metrics=prune,
                         on_start=started)
        except Stopped as exc:
            trial.set_user_attr("reason", exc.reason)
            study.tell(trial, state=TrialState.PRUNED)
            return Outcome("PRUNED", exc.reason)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(fixed)  # not the point's fault: run it again on resume
            raise
        except Exception as exc:  # the trial fails, the study goes on
            trial.set_user_attr("reason", failure_reason(exc))
            trial.set_user_attr("error", str(exc).strip().splitlines()[0][:500] if str(exc).strip() else "")
            study.tell(trial, state=TrialState.FAIL)
            return Outcome("FAIL", failure_reason(exc))
    trial.set_user_attr("test_score", result.test)
    study.tell(trial, result.dev_best)
    return Outcome("COMPLETE")


# ---- workers -------------------------------------------------------------------------------------

def _final_name(cell: Cell) -> str:
    return f"{cell.name}/{FINAL}"


def drain(storage: Any, cells: list[Cell], log=print) -> dict[str, int]:
    """Run WAITING trials of every cell (grid, then final) until none is left; count outcomes."""
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    for cell in cells:
        parent = _study(storage, cell.name).user_attrs[PARENT]
        for name, final in ((cell.name, False), (_final_name(cell), True)):
            try:
                study = _study(storage, name)
            except KeyError:  # not created yet (final phase comes later)
                continue
            while (trial := claim(study)) is not None:
                started = time.time()
                outcome = run_trial(study, trial, cell, parent, final=final)
                counts[outcome.state] += 1
                log(f"{name} trial {trial.number} {_fixed(study, trial)}: {outcome.state}"
                    f"{' (' + outcome.reason + ')' if outcome.reason else ''} in {time.time() - started:.0f} s")
    return counts


def enqueue_finals(storage: Any, cell: Cell) -> Any | None:
    """After a cell's grid is done: tag its best trial final and enqueue the preset's other seeds."""
    from optuna.trial import TrialState

    study = _study(storage, cell.name)
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials):
        return None
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    if "mlflow_run_id" in best.user_attrs:
        tracking.set_tags(best.user_attrs["mlflow_run_id"], {"final": "true"})
    final = _study(storage, _final_name(cell), create=True)
    final.set_user_attr("best_trial", best.number)
    best_seed = int(best.system_attrs.get("fixed_params", {}).get("seed", 0))
    for seed in cell.seeds:
        if seed != best_seed:
            final.enqueue_trial({**{k: str(v) for k, v in best.params.items()}, "seed": seed}, skip_if_exists=True)
    return final


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


def _wait(procs: list[subprocess.Popen]) -> None:
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


def run_phase(experiment: Experiment, preset: str, storage_url: str, cells: list[Cell], workers: int) -> None:
    if workers <= 1:
        drain(open_storage(storage_url), cells)
    else:
        _wait(spawn_workers(experiment.name, storage_url, workers))


def study(experiment: Experiment, preset: str, storage_url: str | None = None, workers: int = 1) -> dict:
    """Validate, enqueue, drain the grids, then the finals; resumable. Returns a summary."""
    cells = experiment.cells(preset)
    validate(cells)
    experiment_id = tracking.connect(experiment.name)
    storage_url = storage_url or default_storage_url(experiment.name)
    storage = open_storage(storage_url)
    for cell in cells:
        grid = enqueue_grid(storage, cell)
        reclaim_stale(grid)
        ensure_parent_run(grid, cell, experiment_id)
        try:
            reclaim_stale(_study(storage, _final_name(cell)))
        except KeyError:
            pass
    run_phase(experiment, preset, storage_url, cells, workers)
    for cell in cells:
        if enqueue_finals(storage, cell) is None:
            raise BenchmarkError(f"{cell.name}: grid not finished (or no completed trial); rerun to resume")
    run_phase(experiment, preset, storage_url, cells, workers)
    summary = summarize(storage, cells)
    for cell in cells:
        grid = _study(storage, cell.name)
        best = grid.best_trial
        tracking.terminate(grid.user_attrs[PARENT], "FINISHED", best_trial=str(best.number),
                           best_dev=f"{best.value:.4f}", best_params=str(best.params))
    return summary


def summarize(storage: Any, cells: list[Cell]) -> dict:
    from optuna.trial import TrialState

    out = {}
    for cell in cells:
        trials = _study(storage, cell.name).get_trials(deepcopy=False)
        out[cell.name] = {state.name: sum(t.state == state for t in trials)
                          for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    return out


def joined_cells(experiment: Experiment, storage: Any) -> list[Cell]:
    """The cells of `experiment` (any preset) that have a study in `storage`: what a joining worker drains."""
    import optuna

    names = set(optuna.get_all_study_names(storage))
    return [cell for preset in experiment.presets for cell in experiment.cells(preset) if cell.name in names]
