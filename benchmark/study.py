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
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import tracking
from benchmark.errors import BenchmarkError, first_line
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
            raise BenchmarkError(f"cannot open Optuna storage {url}: {first_line(exc)}") from None
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
    from benchmark.runner import sample

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
                try:
                    sample(cfg)  # seed 0, as trial_config built it
                except BenchmarkError as exc:
                    raise BenchmarkError(f"{cell.name}: {exc}") from None


# ---- studies -------------------------------------------------------------------------------------

TPE = "tpe"


def _study(storage: Any, name: str, create: bool = False) -> Any:
    """Grid studies never prune (every point is a result); free-search studies (`.../tpe`) use TPE
    (constant liar, for parallel workers) with median pruning on the dev score."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if name.endswith("/" + TPE):
        kw = {"sampler": optuna.samplers.TPESampler(n_startup_trials=4, constant_liar=True),
              "pruner": optuna.pruners.MedianPruner(n_startup_trials=3)}
    else:
        kw = {"pruner": optuna.pruners.NopPruner()}
    if create:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True, **kw)
    return optuna.load_study(study_name=name, storage=storage, **kw)


def existing_study(storage: Any, name: str) -> Any | None:
    """The study if it exists (a cell's free search and finals may not), else None."""
    try:
        return _study(storage, name)
    except KeyError:
        return None


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


class Interrupt:
    """Ctrl-C as a request: the running trial stops at its next step (or evaluation) and is put
    back in the queue. Raising from the signal handler itself could land in a garbage-collection
    callback, where Python drops it (seen with SQLAlchemy); a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("interrupt: stopping after this step (Ctrl-C again to stop now)", file=sys.stderr)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    reason: str = ""


def grid_point(study: Any, trial: Any, cell: Cell, final: bool) -> tuple[dict[str, str], int]:
    """An enqueued trial's point and seed, recorded as its params (categorical over the grid's values)."""
    fixed = _fixed(study, trial)
    point = {k: str(v) for k, v in fixed.items() if k != "seed"}
    for key, value in point.items():
        trial.suggest_categorical(key, [value] if final else list(cell.grid.get(key, (value,))))
    return point, int(fixed.get("seed", 0))


def suggested_point(trial: Any, cell: Cell) -> tuple[dict[str, str], int]:
    """Free search inside the grid's ranges: log-uniform between the smallest and largest numeric
    value (integers stay integers), categorical for words; single values stay fixed."""
    point = {}
    for key, values in sorted(cell.grid.items()):
        if len(set(values)) == 1:
            point[key] = values[0]
            continue
        try:
            numbers = sorted(float(v) for v in values)
        except ValueError:
            point[key] = trial.suggest_categorical(key, list(values))
            continue
        if all(n.is_integer() for n in numbers):
            point[key] = str(trial.suggest_int(key, int(numbers[0]), int(numbers[-1]), log=numbers[0] > 0))
        else:
            point[key] = str(trial.suggest_float(key, numbers[0], numbers[-1], log=numbers[0] > 0))
    return point, 0


def run_trial(study: Any, trial: Any, cell: Cell, parent_run_id: str, point: dict[str, str], seed: int,
              final: bool = False, interrupt: Interrupt | None = None) -> Outcome:
    """One trial = one training run (an MLflow child run); tells Optuna how it ended. Dev scores are
    reported to the study's pruner (a NopPruner for grids, median pruning for free search)."""
    from optuna.trial import TrialState

    from benchmark.runner import Stopped, failure_reason, run

    cfg, hp = trial_config(cell, point, seed)
    trial.set_user_attr("point", point)
    trial.set_user_attr("seed", seed)
    tags = {"preset": cell.preset, "study": study.study_name, "trial": str(trial.number), "row": cell.row.label,
            **({"final": "true"} if final else {})}

    def started(run_id: str) -> None:
        trial.set_user_attr("mlflow_run_id", run_id)

    def prune(metrics: dict[str, float], step: int) -> None:
        if interrupt is not None:
            interrupt.check()
        if "eval/dev_score" in metrics and step > 0 and not final:  # dev@0 is the same for every trial
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
            study.enqueue_trial(_fixed(study, trial) or point)  # not the point's fault: run it again on resume
            raise
        except Exception as exc:  # the trial fails, the study goes on
            trial.set_user_attr("reason", failure_reason(exc))
            trial.set_user_attr("error", first_line(exc)[:500])  # the exception type when it has no message
            study.tell(trial, state=TrialState.FAIL)
            return Outcome("FAIL", failure_reason(exc))
    trial.set_user_attr("test_score", result.test)
    study.tell(trial, result.dev_best)
    return Outcome("COMPLETE")


# ---- workers -------------------------------------------------------------------------------------

def final_name(cell: Cell) -> str:
    return f"{cell.name}/{FINAL}"


def search_name(cell: Cell) -> str:
    return f"{cell.name}/{TPE}"


def study_names(cell: Cell) -> tuple[str, str, str]:
    """A cell's studies in the order they run: grid, free search (`--search tpe`), finals."""
    return cell.name, search_name(cell), final_name(cell)


def _budget_left(study: Any) -> bool:
    """A free-search study has started fewer trials than its budget (`trials`)."""
    started = sum(t.state.name != "WAITING" for t in study.get_trials(deepcopy=False))
    return started < study.user_attrs.get("trials", 0)


def _free_trial(study: Any) -> Any | None:
    """The next free-search trial while the study's budget is not spent."""
    return study.ask() if _budget_left(study) else None


def drain(storage: Any, cells: list[Cell], log=print) -> dict[str, int]:
    """Run every cell's pending trials (grid queue, free-search budget, finals) until none is left."""
    tracking.git_commit()  # pin the commit of the code this worker loaded
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    with Interrupt() as interrupt:
        for cell in cells:
            _drain_cell(storage, cell, counts, interrupt, log)
    return counts


def _drain_cell(storage: Any, cell: Cell, counts: dict[str, int], interrupt: Interrupt, log) -> None:
    """Run one cell's pending grid, free-search and final trials."""
    parent = _study(storage, cell.name).user_attrs[PARENT]
    for name in study_names(cell):
        if name == final_name(cell):
            enqueue_finals(storage, cell)  # whoever finishes the search enqueues the seeds
        study = existing_study(storage, name)
        if study is None:  # not created (no free search, or the search is not finished)
            continue
        final, free = name.endswith("/" + FINAL), name.endswith("/" + TPE)
        while True:
            interrupt.check()
            trial = _free_trial(study) if free else claim(study)
            if trial is None:
                break
            point, seed = suggested_point(trial, cell) if free else grid_point(study, trial, cell, final)
            began = time.time()
            outcome = run_trial(study, trial, cell, parent, point, seed, final, interrupt)
            counts[outcome.state] += 1
            log(f"{name} trial {trial.number} {point} seed {seed}: {outcome.state}"
                f"{' (' + outcome.reason + ')' if outcome.reason else ''} in {time.time() - began:.0f} s")


def _searched(storage: Any, cell: Cell) -> list[tuple[str, Any]]:
    """(study name, trial) of the cell's grid and free-search trials."""
    out = []
    for name in (cell.name, search_name(cell)):
        study = existing_study(storage, name)
        if study is None:
            continue
        out += [(name, t) for t in study.get_trials(deepcopy=False)]
        if name.endswith(TPE) and _budget_left(study):
            out.append((name, None))  # budget not spent: not done
    return out


def enqueue_finals(storage: Any, cell: Cell) -> bool:
    """Once a cell's search is done: tag its best trial final and enqueue the preset's other seeds
    with the same point, in `<cell>/final`. Creating that study is the claim: exactly one process
    wins it (the storage refuses a duplicate name), so seeds are enqueued once. False while the
    search is unfinished, has no completed trial, or another process holds the claim."""
    import optuna
    from optuna.trial import TrialState

    searched = _searched(storage, cell)
    if any(t is None or t.state in (TrialState.WAITING, TrialState.RUNNING) for _, t in searched):
        return False
    done = [(name, t) for name, t in searched if t.state == TrialState.COMPLETE]
    if not done:
        return False
    try:
        final = optuna.create_study(study_name=final_name(cell), storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        final = _study(storage, final_name(cell))
        if final.user_attrs.get("enqueued"):
            return False
        if time.time() - final.user_attrs.get("claimed", 0) < STALE_S:
            return False  # another process is enqueueing right now
    final.set_user_attr("claimed", time.time())
    name, best = max(done, key=lambda pair: pair[1].value)
    if "mlflow_run_id" in best.user_attrs:
        tracking.set_tags(best.user_attrs["mlflow_run_id"], {"final": "true"})
    final.set_user_attr("best_trial", f"{name}#{best.number}")
    final.set_user_attr("best_point", best.user_attrs["point"])
    for seed in cell.seeds:
        if seed != best.user_attrs["seed"]:
            final.enqueue_trial({**best.user_attrs["point"], "seed": seed}, skip_if_exists=True)
    final.set_user_attr("enqueued", True)
    return True


def cell_done(storage: Any, cell: Cell) -> bool:
    """Search finished and every final seed complete."""
    final = existing_study(storage, final_name(cell))
    if final is None:
        return False
    trials = final.get_trials(deepcopy=False)
    return bool(final.user_attrs.get("enqueued")) and all(t.state.name not in ("WAITING", "RUNNING") for t in trials)


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


def run_phase(experiment: Experiment, storage_url: str, cells: list[Cell], workers: int) -> None:
    if workers <= 1:
        drain(open_storage(storage_url), cells)
    else:
        _wait(spawn_workers(experiment.name, storage_url, workers))


def study(experiment: Experiment, preset: str, storage_url: str | None = None, workers: int = 1,
          search: str = "grid", trials: int = 20) -> dict:
    """Validate, enqueue the grids (or open a free search of `trials` per cell), drain, then run
    each cell's best configuration over the preset's seeds; resumable. Returns a summary."""
    if search not in ("grid", TPE):
        raise BenchmarkError(f"--search {search!r}: expected grid or tpe")
    cells = experiment.cells(preset)
    validate(cells)
    experiment_id = tracking.connect(experiment.name)
    storage_url = storage_url or default_storage_url(experiment.name)
    storage = open_storage(storage_url)
    for cell in cells:
        grid = enqueue_grid(storage, cell) if search == "grid" else _study(storage, cell.name, create=True)
        ensure_parent_run(grid, cell, experiment_id)
        if search == TPE:
            _study(storage, search_name(cell), create=True).set_user_attr("trials", trials)
        for name in study_names(cell):
            if (existing := existing_study(storage, name)) is not None:
                reclaim_stale(existing)
    if workers == 0:
        print(f"enqueued {len(cells)} studies in {storage_url}; start workers with: benchmark worker "
              f"{experiment.name} --storage {storage_url}")
        return summarize(storage, cells)
    for _ in range(2):  # a second pass picks up finals whose search ended in another worker's last trial
        run_phase(experiment, storage_url, cells, workers)
        if all(cell_done(storage, cell) for cell in cells):
            break
    unfinished = [cell.name for cell in cells if not cell_done(storage, cell)]
    if unfinished:
        raise BenchmarkError(f"{len(unfinished)} cell(s) unfinished (no completed trial, or another worker is still "
                             f"running), e.g. {unfinished[0]}; rerun to resume")
    summary = summarize(storage, cells)
    for cell in cells:  # the parent run ends once its cell is complete
        final = _study(storage, final_name(cell))
        tracking.terminate(_study(storage, cell.name).user_attrs[PARENT], "FINISHED",
                           best_trial=final.user_attrs["best_trial"], best_point=str(final.user_attrs["best_point"]))
    return summary


def summarize(storage: Any, cells: list[Cell]) -> dict:
    """Per cell: how many search trials completed, were pruned, failed."""
    out = {}
    for cell in cells:
        trials = [t for _, t in _searched(storage, cell) if t is not None]
        out[cell.name] = {state: sum(t.state.name == state for t in trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    return out


def joined_cells(experiment: Experiment, storage: Any) -> list[Cell]:
    """The cells of `experiment` (any preset) that have a study in `storage`: what a joining worker drains."""
    import optuna

    names = set(optuna.get_all_study_names(storage))
    return [cell for preset in experiment.presets for cell in experiment.cells(preset) if cell.name in names]
