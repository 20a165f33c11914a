"""After a cell's search: its best trial becomes final and the cell's other seeds (its row's, else the
preset's) are enqueued with the same point, in `<cell>/final`; and the bookkeeping of what is done."""
from __future__ import annotations

import time
from typing import Any

from benchmark import tracking
from benchmark.core import records
from benchmark.experiments.base import Cell
from benchmark.study.liveness import STALE_S
from benchmark.study.storage import TPE, existing_study, final_name, load, search_name, study_names


def budget_left(study: Any) -> bool:
    """A free-search study has started fewer trials than its budget (`trials`)."""
    started = sum(t.state.name != "WAITING" for t in study.get_trials(deepcopy=False))
    return started < study.user_attrs.get("trials", 0)


def searched(storage: Any, cell: Cell) -> list[tuple[str, Any]]:
    """(study name, trial) of the cell's grid and free-search trials; (name, None) while a free
    search's budget is not spent."""
    out = []
    for name in (cell.name, search_name(cell)):
        study = existing_study(storage, name)
        if study is None:
            continue
        out += [(name, t) for t in study.get_trials(deepcopy=False)]
        if name.endswith(TPE) and budget_left(study):
            out.append((name, None))
    return out


def enqueue_finals(storage: Any, cell: Cell) -> bool:
    """Once a cell's search is done: tag its best trial final and enqueue the preset's other seeds
    with the same point, in `<cell>/final`. Creating that study is the claim: exactly one process
    wins it (the storage refuses a duplicate name), so seeds are enqueued once. False while the
    search is unfinished, has no completed trial, or another process holds the claim."""
    import optuna
    from optuna.trial import TrialState

    trials = searched(storage, cell)
    if any(t is None or t.state in (TrialState.WAITING, TrialState.RUNNING) for _, t in trials):
        return False
    done = [(name, t) for name, t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return False
    try:
        final = optuna.create_study(study_name=final_name(cell), storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        final = load(storage, final_name(cell))
        if final.user_attrs.get("enqueued"):
            return False
        if time.time() - final.user_attrs.get("claimed", 0) < STALE_S:
            return False  # another process is enqueueing right now
    final.set_user_attr("claimed", time.time())
    name, best = max(done, key=lambda pair: pair[1].value)
    run_id = best.user_attrs.get("mlflow_run_id")
    if run_id and tracking.run_exists(run_id):
        tracking.set_tags(run_id, {"final": "true"})
        if cell.records:
            records.save(run_id)
    elif cell.records:  # the run is in the MLflow store of another machine: its committed record is here
        records.mark({"study": name, "trial": str(best.number), "preset": cell.preset, "task": cell.task,
                      "row": cell.row.label}, final="true")
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


def summarize(storage: Any, cells: list[Cell]) -> dict:
    """Per cell: how many search trials completed, were pruned, failed."""
    out = {}
    for cell in cells:
        trials = [t for _, t in searched(storage, cell) if t is not None]
        out[cell.name] = {state: sum(t.state.name == state for t in trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    return out


def cell_trials(storage: Any, cell: Cell) -> list[Any]:
    """Every trial of the cell's studies (grid, free search, finals), whatever its state."""
    studies = (existing_study(storage, name) for name in study_names(cell))
    return [t for study in studies if study is not None for t in study.get_trials(deepcopy=False)]


RERUN = ("stale", "interrupted")  # failures whose point is enqueued again: not a finished trial


def tally(storage: Any, cell: Cell) -> tuple[int, int]:
    """(trials finished, trials planned) of a cell: its search (grid points, one for a tuned_by cell, a
    free search's budget) and its other final seeds."""
    search = existing_study(storage, search_name(cell))
    planned = 1 if cell.source else len(cell.points())
    if search is not None:
        planned = search.user_attrs.get("trials", planned)
    planned += len(cell.seeds) - 1
    trials = cell_trials(storage, cell)
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") or
                   (t.state.name == "FAIL" and t.user_attrs.get("reason") not in RERUN) for t in trials)
    return min(finished, planned), planned
