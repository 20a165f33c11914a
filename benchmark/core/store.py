"""The MLflow tracking store, for whoever reads or writes it: where it is, one client, whether an
experiment is there.

Default store: `sqlite:///runs/mlflow.db` (MLFLOW_TRACKING_URI wins). The store is checked before
any work so an unreachable server is one line up front, not a traceback after an hour of training.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError, first_line

DEFAULT_URI = "sqlite:///runs/mlflow.db"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)


def client() -> Any:
    """An `MlflowClient` on the store (mlflow is imported here, not at start-up: `benchmark list` stays fast)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


def exists() -> bool:
    """Whether there is a store to read: a local SQLite file that is there, or any server URI (a server
    that does not answer fails where it is read). Readers of committed records skip a store that is absent."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).is_file() if uri.startswith("sqlite:///") else True


def unreachable(exc: BaseException) -> BenchmarkError:
    return BenchmarkError(f"MLflow tracking store {tracking_uri()} is unreachable: {first_line(exc)[:200]}")


def find_experiment(experiment: str) -> str | None:
    """Point MLflow at the store; the experiment's id, or None if it does not exist. An unreachable
    store fails in one line, at once (no retries)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("http"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
    except Exception as exc:  # connection, auth, schema: all mean "cannot read or record results"
        raise unreachable(exc) from None
    return None if found is None else found.experiment_id


def require_experiment(experiment: str, hint: str) -> None:
    """For readers (reports, doctor): the experiment must exist; `hint` says how to fill it."""
    if find_experiment(experiment) is None:
        raise BenchmarkError(f"no MLflow experiment {experiment!r} in {tracking_uri()}; {hint}")
