"""`benchmark doctor EXP`: Optuna and MLflow must tell the same story.

Every COMPLETE trial has a FINISHED MLflow run carrying the contract metrics; every PRUNED trial a
KILLED run with a reason; every FAIL trial a FAILED or KILLED run (or none, if it died before its
run started); no MLflow trial run is unknown to Optuna (an orphan), and none is left RUNNING
without a RUNNING trial.
"""
from __future__ import annotations

from typing import Any

from benchmark import tracking
from benchmark.core import names
from benchmark.experiments.base import Experiment
from benchmark.study.storage import existing_study, joined_cells, study_names

EXPECTED = {"COMPLETE": ("FINISHED",), "PRUNED": ("KILLED",), "FAIL": ("FAILED", "KILLED")}


def _trial_runs(experiment: str) -> dict[tuple[str, str], Any]:
    """MLflow child runs of the experiment, keyed by (study, trial number)."""
    import mlflow

    tracking.connect(experiment)
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="tags.trial != ''", output_format="list")
    return {(r.data.tags.get("study", ""), r.data.tags.get("trial", "")): r for r in runs}


def doctor(experiment: Experiment, storage: Any) -> list[str]:
    runs = _trial_runs(experiment.name)
    cells = joined_cells(experiment, storage)
    studies = list(dict.fromkeys(name for cell in cells for name in study_names(cell)))
    seen: set[tuple[str, str]] = set()
    problems: list[str] = []
    for name in studies:
        study = existing_study(storage, name)
        if study is None:
            continue
        for trial in study.get_trials(deepcopy=False):
            key = (name, str(trial.number))
            run = runs.get(key)
            seen.add(key)
            where = f"{name} trial {trial.number} ({trial.state.name})"
            if trial.state.name in ("WAITING", "RUNNING"):
                if run is not None and trial.state.name == "WAITING":
                    problems.append(f"{where}: has an MLflow run but never started")
                continue
            if run is None:
                if trial.state.name != "FAIL":
                    problems.append(f"{where}: no MLflow run")
                continue
            status = run.info.status
            if status not in EXPECTED[trial.state.name]:
                problems.append(f"{where}: MLflow run {run.info.run_id} is {status}")
            if trial.state.name == "COMPLETE":
                missing = [m for m in names.CONTRACT if m not in run.data.metrics]
                if missing:
                    problems.append(f"{where}: MLflow run {run.info.run_id} lacks {', '.join(missing)}")
            elif not (run.data.tags.get("reason") or run.data.tags.get("error")):
                problems.append(f"{where}: MLflow run {run.info.run_id} does not say why it ended")
    for key, run in runs.items():
        if key[0] in studies and key not in seen:
            problems.append(f"orphan MLflow run {run.info.run_id}: {key[0]} trial {key[1]} is not in Optuna")
    return problems
