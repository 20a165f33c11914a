"""One trial: its configuration (validated for every grid point before a study starts), its point
(enqueued or suggested), and its run: an MLflow child run of the cell's parent run, told back to
Optuna as COMPLETE (the best dev score), PRUNED or FAIL with a reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark import checkpoint, tracking
from benchmark.core import names
from benchmark.core.errors import BenchmarkError, first_line
from benchmark.experiments.base import Cell
from benchmark.interrupt import Interrupt
from benchmark.loop import Stopped
from benchmark.runner import build_run, failure_reason, run, sample
from benchmark.study import carry
from benchmark.study.liveness import RESUME, Heartbeat, requeue
from benchmark.study.optuna_private import enqueued_point
from benchmark.study.storage import FINAL, existing_study, load

PARENT = "mlflow_parent_run_id"


def trial_config(cell: Cell, point: dict[str, str], seed: int = 0, extra: dict[str, str] | None = None):
    return build_run(cell.row.method, cell.task, {**cell.settings(point), **(extra or {})}, model=cell.model,
                     steps=cell.steps, seed=seed, experiment=cell.experiment)


def validate(cells: list[Cell]) -> None:
    """Build every trial's config and sample every distinct dataset once: config and data errors
    surface here, in one line, before a study is created."""
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


def enqueue_grid(storage: Any, cell: Cell) -> Any:
    """The cell's grid study with every point enqueued; a tuned_by cell's stays empty until its source
    cell has a best point (`enqueue_tuned`)."""
    study = load(storage, cell.name, create=True)
    study.set_user_attr("experiment", cell.experiment)
    if cell.source is None:
        for point in cell.points():
            study.enqueue_trial(point, skip_if_exists=True)
    return study


def enqueue_tuned(storage: Any, cell: Cell) -> bool:
    """A tuned_by cell: enqueue its source cell's best point once the source's search has chosen it.
    False while it has not (the source's finals study records the point when its search ends)."""
    source = existing_study(storage, f"{cell.source}/{FINAL}")
    if source is None or "best_point" not in source.user_attrs:
        return False
    load(storage, cell.name).enqueue_trial(dict(source.user_attrs["best_point"]), skip_if_exists=True)
    return True


def ensure_parent_run(study: Any, cell: Cell, experiment_id: str) -> str:
    """The cell's MLflow parent run (its grid and final trials are children), created once, and again
    when the study's storage was carried to another MLflow store (a committed journal on a fresh machine)."""
    if PARENT not in study.user_attrs or not tracking.run_exists(study.user_attrs[PARENT]):
        tags = {"method": cell.row.method, "task": cell.task, "model": cell.model, "preset": cell.preset,
                "study": study.study_name, "row": cell.row.label}
        study.set_user_attr(PARENT, tracking.create_run(experiment_id, study.study_name, tags))
    return study.user_attrs[PARENT]


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    reason: str = ""
    run_id: str | None = None  # the trial's MLflow run, where one was started


def grid_point(study: Any, trial: Any, cell: Cell, final: bool) -> tuple[dict[str, str], int]:
    """An enqueued trial's point and seed, recorded as its params (categorical over the grid's values)."""
    fixed = enqueued_point(study, trial)
    point = {k: str(v) for k, v in fixed.items() if k != "seed"}
    for key, value in point.items():
        trial.suggest_categorical(key, [value] if final else list(cell.choices().get(key, (value,))))
    return point, int(fixed.get("seed", 0))


def suggested_point(trial: Any, cell: Cell) -> tuple[dict[str, str], int]:
    """Free search inside the grid's ranges: log-uniform between the smallest and largest numeric
    value (integers stay integers), categorical for words; single values stay fixed."""
    point = {}
    for key, values in sorted(cell.choices().items()):
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

    cfg, hp = trial_config(cell, point, seed)
    trial.set_user_attr("point", point)
    trial.set_user_attr("seed", seed)
    tags = {"preset": cell.preset, "study": study.study_name, "trial": str(trial.number), "row": cell.row.label,
            **({"final": "true"} if final else {})}
    resume = trial.user_attrs.get(RESUME)
    if resume and not checkpoint.exists(resume) and cell.records and carry.exists(cell.experiment, resume):
        carried, resume = resume, carry.restore(cell.experiment, resume, parent_run_id)
        carry.save(cell.experiment, resume)  # carried under its new id at once: this machine may end too
        carry.drop(cell.experiment, carried)
        print(f"{study.study_name} trial {trial.number}: run {carried}, carried from another machine, "
              f"resumes here as run {resume}")
    if resume and not checkpoint.exists(resume):  # e.g. reclaimed on a machine that cannot see the checkpoints
        print(f"{study.study_name} trial {trial.number}: no checkpoint of run {resume} here; starting afresh")
        resume = None
    mlflow_run = [resume]
    carried_along = (lambda run_id: carry.save_or_say(cell.experiment, run_id)) if cell.records else None

    def started(run_id: str) -> None:
        mlflow_run[0] = run_id
        trial.set_user_attr("mlflow_run_id", run_id)

    def prune(metrics: dict[str, float], step: int) -> None:
        if interrupt is not None:
            interrupt.check()
        if names.DEV_SCORE in metrics and step > 0 and not final:  # dev@0 is the same for every trial
            trial.report(metrics[names.DEV_SCORE], step)
            if trial.should_prune():
                raise Stopped(f"pruned at step {step}", reason="pruned")

    with Heartbeat(study, trial):
        try:
            result = run(cfg, hp, progress=False, parent_run_id=parent_run_id, extra_tags=tags, on_metrics=prune,
                         on_start=started, resume=resume, on_checkpoint=carried_along)
        except Stopped as exc:
            trial.set_user_attr("reason", exc.reason)
            study.tell(trial, state=TrialState.PRUNED)
            carry.drop(cell.experiment, mlflow_run[0])
            return Outcome("PRUNED", exc.reason, mlflow_run[0])
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            requeue(study, cell.experiment, enqueued_point(study, trial) or point, mlflow_run[0])  # go on
            raise
        except Exception as exc:  # the trial fails, the study goes on
            trial.set_user_attr("reason", failure_reason(exc))
            trial.set_user_attr("error", first_line(exc)[:500])  # the exception type when it has no message
            study.tell(trial, state=TrialState.FAIL)
            carry.drop(cell.experiment, mlflow_run[0])
            return Outcome("FAIL", failure_reason(exc), mlflow_run[0])
    trial.set_user_attr("test_score", result.test)
    study.tell(trial, result.dev_best)
    carry.drop(cell.experiment, mlflow_run[0])
    return Outcome("COMPLETE", run_id=mlflow_run[0])

