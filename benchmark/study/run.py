"""`benchmark study EXPERIMENT`, top to bottom: validate every trial, enqueue the grids (or open a
free search), reclaim stale trials, drain with local workers, then the finals; resumable."""
from __future__ import annotations

from benchmark import tracking
from benchmark.core.errors import BenchmarkError
from benchmark.experiments.base import Cell, Experiment
from benchmark.study.finals import cell_done, summarize
from benchmark.study.liveness import reclaim_stale
from benchmark.study.storage import (
    TPE,
    default_storage_url,
    existing_study,
    final_name,
    load,
    open_storage,
    search_name,
    study_names,
)
from benchmark.study.trials import PARENT, enqueue_grid, ensure_parent_run, validate
from benchmark.study.workers import drain, spawn_workers, wait


def run_phase(experiment: Experiment, storage_url: str, cells: list[Cell], workers: int) -> None:
    if workers <= 1:
        drain(open_storage(storage_url), cells)
    else:
        wait(spawn_workers(experiment.name, storage_url, workers))


def study(experiment: Experiment, preset: str, storage_url: str | None = None, workers: int = 1,
          search: str = "grid", trials: int = 20) -> dict:
    """Validate, enqueue the grids (or open a free search of `trials` per cell), drain, then run
    each cell's best configuration over the preset's seeds; resumable. Returns a summary."""
    if search not in ("grid", TPE):
        raise BenchmarkError(f"--search {search!r}: expected grid or tpe")
    cells = experiment.cells(preset)
    validate(cells)
    experiment_id = tracking.connect(experiment.name)
    storage_url = storage_url or default_storage_url(experiment)
    storage = open_storage(storage_url)
    for cell in cells:
        grid = enqueue_grid(storage, cell) if search == "grid" else load(storage, cell.name, create=True)
        ensure_parent_run(grid, cell, experiment_id)
        if search == TPE:
            load(storage, search_name(cell), create=True).set_user_attr("trials", trials)
        for name in study_names(cell):
            if (existing := existing_study(storage, name)) is not None:
                reclaim_stale(existing, experiment.name, experiment_id)
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
        final = load(storage, final_name(cell))
        tracking.terminate(load(storage, cell.name).user_attrs[PARENT], "FINISHED",
                           best_trial=final.user_attrs["best_trial"], best_point=str(final.user_attrs["best_point"]))
    return summary
