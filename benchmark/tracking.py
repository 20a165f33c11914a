"""Writing runs to MLflow: experiments, runs with the naming contract's tags and params, batched
metrics, runs ended from outside (a study's parent, a dead worker's). Reading is `benchmark.core.store`."""
from __future__ import annotations

import functools
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmark import ui
from benchmark.core.errors import BenchmarkError
from benchmark.core.store import client, find_experiment, tracking_uri, unreachable

ARTIFACTS = Path("runs") / "mlartifacts"


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """The commit of the code this process loaded (asked once: a commit made while a study runs must not
    relabel its later trials)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


ENGINE = ("methods",)  # the code that decides a trajectory: what `engine` hashes


@functools.lru_cache(maxsize=None)
def engine_version() -> str:
    """The git tree hash of the training code (`methods/`) this process loaded, "-dirty" when it has
    uncommitted changes: two runs with one `engine` tag step alike whatever else was committed between
    them (reports, docs), so a paired comparison can check both members ran the same engine."""
    root = Path(__file__).resolve().parent.parent
    try:
        trees = [subprocess.run(["git", "rev-parse", "--short=12", f"HEAD:{path}"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip() for path in ENGINE]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *ENGINE], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return "+".join(trees) + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


RUN_PACKAGES = ("torch", "transformers", "peft", "datasets", "optuna", "mlflow")


def package_versions() -> str:
    """The libraries a run's numbers depend on, as one tag (`packages`)."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return ", ".join(f"{name} {version(name)}" for name in RUN_PACKAGES)


def connect(experiment: str) -> str:
    """The experiment's id, created (and marked for the UI) if new. Fails in one line."""
    import mlflow

    found = find_experiment(experiment)
    if found is not None:
        return found
    uri = tracking_uri()
    location = ARTIFACTS.resolve().as_uri() if not uri.startswith("http") else None
    try:
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    except Exception as exc:
        raise unreachable(exc) from None
    ui.mark(experiment_id)  # opens on its training runs, charted by method (`benchmark ui`)
    return experiment_id


def start_run(experiment_id: str, name: str, tags: dict[str, str], params: dict[str, Any],
              parent_run_id: str | None = None) -> Any:
    import mlflow

    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags,
                           parent_run_id=parent_run_id, log_system_metrics=False)
    mlflow.log_params({k: str(v) for k, v in params.items()})
    return run


def run_exists(run_id: str) -> bool:
    try:
        client().get_run(run_id)
    except Exception:  # MlflowException (RESOURCE_DOES_NOT_EXIST) for an id this store never had
        return False
    return True


def check_run(run_id: str, experiment_id: str) -> None:
    """A run to resume: it exists in this experiment and has not finished."""
    try:
        run = client().get_run(run_id)
    except Exception:
        raise BenchmarkError(f"--resume {run_id}: no such MLflow run in {tracking_uri()}") from None
    if run.info.experiment_id != experiment_id:
        raise BenchmarkError(f"--resume {run_id}: the run is in another MLflow experiment than its checkpoint says")
    if run.info.status == "FINISHED":
        raise BenchmarkError(f"--resume {run_id}: the run has finished")


def resume_run(run_id: str, tags: dict[str, str], step: int) -> "MetricBuffer":
    """Reopen a run from its checkpoint at `step`: RUNNING again, its tags updated (`resumed`: every step it
    resumed from), the reason it stopped cleared. The buffer skips what the store holds already: the steps
    between the checkpoint and the kill are recomputed, with the same values, and not logged twice."""
    import mlflow

    mlflow_client = client()
    before = mlflow_client.get_run(run_id).data
    resumed = ",".join(filter(None, [before.tags.get("resumed", ""), str(step)]))
    mlflow.start_run(run_id=run_id, tags={**tags, "resumed": resumed}, log_system_metrics=False)
    for key in ("reason", "error"):
        if key in before.tags:
            mlflow_client.delete_tag(run_id, key)
    logged = {key: max(m.step for m in mlflow_client.get_metric_history(run_id, key)) for key in before.metrics}
    return MetricBuffer(run_id, logged=logged)


def log_text_artifact(text: str, name: str) -> int:
    """`text` as the active run's artifact `name`; returns its size in bytes."""
    import mlflow

    mlflow.log_text(text, name)
    return len(text.encode())


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics(metrics, step=step)


def end_run(status: str = "FINISHED", **tags: str) -> None:
    """End the active run; `tags` say why when it did not finish (error=..., reason=...)."""
    import mlflow

    if tags:
        mlflow.set_tags(tags)
    mlflow.end_run(status=status)


class MetricBuffer:
    """Collects step metrics and writes them in batches, at most `flush_s` apart: one SQLite write
    per step would cost more than a tiny model's training step, yet the UI should stay current."""

    def __init__(self, run_id: str, flush_s: float = 10.0, logged: dict[str, int] | None = None) -> None:
        self.run_id = run_id
        self.flush_s = flush_s
        self.logged = logged or {}  # per metric, steps up to this one are in the store already (a resumed run)
        self._pending: list[Any] = []
        self._last = time.monotonic()

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items()
                             if step > self.logged.get(k, -1))
        if time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        mlflow_client = client()
        for start in range(0, len(self._pending), 1000):  # MLflow's per-batch metric limit
            mlflow_client.log_batch(self.run_id, metrics=self._pending[start:start + 1000])
        self._pending = []
        self._last = time.monotonic()


def create_run(experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """A run that is not the active one (a study's parent run); returns its id."""
    return client().create_run(experiment_id, tags={**tags, "mlflow.runName": name}).info.run_id


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_tag(run_id, key, value)


def running_runs(experiment_id: str, **tags: str) -> list[str]:
    """The ids of the experiment's RUNNING runs whose tags have these values."""
    quoted = {key: f'"{value}"' if "'" in value else f"'{value}'" for key, value in tags.items()}
    where = " and ".join([f"tags.{key} = {value}" for key, value in quoted.items()] + ["attributes.status = 'RUNNING'"])
    return [run.info.run_id for run in client().search_runs([experiment_id], filter_string=where)]


def terminate(run_id: str, status: str = "FINISHED", **tags: str) -> None:
    """End a run from outside it (a parent run, or the run of a worker that died)."""
    set_tags(run_id, tags)
    client().set_terminated(run_id, status)
