"""Is a RUNNING trial's worker still alive? Each worker stamps its trial with a heartbeat; a trial
whose worker died (same host and dead pid, or no heartbeat for `STALE_S`) is failed with reason
`stale` and its point re-enqueued, so a resumed study runs it again: from the run's last checkpoint, into
the same MLflow run, where there is one (`requeue`)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from benchmark import checkpoint, tracking
from benchmark.study.optuna_private import enqueued_point, set_trial_user_attr

HEARTBEAT_S = 20.0
STALE_S = 600.0  # a RUNNING trial without a heartbeat this long is presumed dead (other hosts)
RESUME = "resume_mlflow_run_id"  # a re-enqueued trial's user attribute: the MLflow run it continues


def requeue(study: Any, point: dict, run_id: str | None) -> None:
    """Enqueue a point again; its next trial resumes MLflow run `run_id` where that run has a checkpoint."""
    resumable = run_id is not None and checkpoint.exists(run_id)
    study.enqueue_trial(point, user_attrs={RESUME: run_id} if resumable else None)


class Heartbeat:
    """Stamps the trial every HEARTBEAT_S seconds while it runs, so other processes can tell it is alive."""

    def __init__(self, study: Any, trial: Any) -> None:
        self.study, self.trial, self.stop = study, trial, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            set_trial_user_attr(self.study, self.trial, "heartbeat", time.time())

    def __enter__(self) -> "Heartbeat":
        set_trial_user_attr(self.study, self.trial, "worker", f"{socket.gethostname()}:{os.getpid()}")
        set_trial_user_attr(self.study, self.trial, "heartbeat", time.time())
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


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
        set_trial_user_attr(study, trial, "reason", "stale")
        study.tell(trial.number, state=TrialState.FAIL)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            tracking.terminate(run_id, "KILLED", reason="stale")
        requeue(study, enqueued_point(study, trial) or trial.params, run_id)
        reclaimed += 1
    return reclaimed
