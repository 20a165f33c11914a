"""Where studies live and what they are called: the Optuna storage, and a cell's three studies
(grid, free search, finals) by name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.core import records
from benchmark.core.errors import BenchmarkError, first_line
from benchmark.experiments.base import Cell, Experiment

JOURNAL_DIR = Path("runs/optuna")
TPE = "tpe"  # a cell's free-search study: `<cell>/tpe`
FINAL = "final"  # a cell's best configuration over the preset's seeds: `<cell>/final`


def default_storage_url(experiment: Experiment) -> str:
    """runs/optuna/<name>.journal; an experiment that commits its records keeps its journal beside them
    (`reports/results/<name>/study.journal`), so a fresh clone resumes the study where it was committed."""
    if experiment.records:
        return str(records.root() / experiment.name / "study.journal")
    return str(JOURNAL_DIR / f"{experiment.name}.journal")


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


def load(storage: Any, name: str, create: bool = False) -> Any:
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
        return load(storage, name)
    except KeyError:
        return None


def final_name(cell: Cell) -> str:
    return f"{cell.name}/{FINAL}"


def search_name(cell: Cell) -> str:
    return f"{cell.name}/{TPE}"


def study_names(cell: Cell) -> tuple[str, str, str]:
    """A cell's studies in the order they run: grid, free search (`--search tpe`), finals."""
    return cell.name, search_name(cell), final_name(cell)


def joined_cells(experiment: Experiment, storage: Any) -> list[Cell]:
    """The cells of `experiment` (any preset) that have a study in `storage`: what a joining worker drains."""
    import optuna

    names = set(optuna.get_all_study_names(storage))
    return [cell for preset in experiment.presets for cell in experiment.cells(preset) if cell.name in names]


def preset_studies(experiment: Experiment, preset: str, storage_url: str | None) -> tuple[list, str]:
    """The preset's grid and free-search studies (the finals repeat one point) and a line saying
    where they were read from: what a report's slice plots draw."""
    url = storage_url or default_storage_url(experiment)
    if "://" not in url and not Path(url).is_file():
        return [], f"no Optuna storage at {url}"
    storage = open_storage(url)
    names = [n for c in experiment.cells(preset) for n in study_names(c)[:2]]
    studies = [s for s in (existing_study(storage, n) for n in names) if s is not None]
    return studies, f"{len(studies)} studies in {url}"
