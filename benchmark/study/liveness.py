"""Is a RUNNING trial's worker still alive? A worker stamps a trial with itself (host:pid) in the write
after taking it (`claim`) and with a heartbeat while it runs; a trial whose worker died (same host and dead
pid, no heartbeat for `STALE_S`, or never stamped for `CLAIM_GRACE_S`) is failed with reason `stale`, its
MLflow run ended (the one it recorded, or one whose `study`/`trial` tags name it: a kill between MLflow
creating the run and the trial recording its id; none where the journal was carried from another machine's
MLflow store), and its point re-enqueued, so a resumed study runs it
again: from the run's last checkpoint, into the same MLflow run, where there is one (`requeue`)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from benchmark import checkpoint, tracking
from benchmark.study import carry
from benchmark.study.optuna_private import enqueued_point, set_trial_user_attr

HEARTBEAT_S = 20.0
STALE_S = 600.0  # a RUNNING trial without a heartbeat this long is presumed dead (other hosts)
CLAIM_GRACE_S = 60.0  # a live worker stamps a trial milliseconds after taking it; unstamped this long, it died
RESUME = "resume_mlflow_run_id"  # a re-enqueued trial's user attribute: the MLflow run it continues


def requeue(study: Any, experiment: str, point: dict, run_id: str | None) -> None:
    """Enqueue a point again; its next trial resumes MLflow run `run_id` where that run has a checkpoint,
    here or carried beside the committed journal (`carry`)."""
    resumable = run_id is not None and (checkpoint.exists(run_id) or carry.exists(experiment, run_id))
    study.enqueue_trial(point, user_attrs={RESUME: run_id} if resumable else None)


def claim(study: Any, trial: Any) -> Any:
    """Stamp a trial just taken (WAITING -> RUNNING, or asked) with its worker: the first write after taking
    it, so a kill before the trial's run starts still leaves a trial `reclaim_stale` can tell is dead."""
    set_trial_user_attr(study, trial, "worker", f"{socket.gethostname()}:{os.getpid()}")
    set_trial_user_attr(study, trial, "heartbeat", time.time())
    return trial


class Heartbeat:
    """Stamps a claimed trial every HEARTBEAT_S seconds while it runs, so other hosts can tell it is alive."""

    def __init__(self, study: Any, trial: Any) -> None:
        self.study, self.trial, self.stop = study, trial, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            set_trial_user_attr(self.study, self.trial, "heartbeat", time.time())

    def __enter__(self) -> "Heartbeat":
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


def _dead(trial: Any, host: str, now: float) -> bool:
    worker = trial.user_attrs.get("worker")
    if worker is None:  # taken, then killed before `claim`'s write
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > CLAIM_GRACE_S
    w_host, _, w_pid = worker.rpartition(":")
    if w_host == host and w_pid.isdigit():
        return not _alive(int(w_pid))
    return now - trial.user_attrs.get("heartbeat", now) > STALE_S


def reclaim_stale(study: Any, experiment: str, experiment_id: str) -> int:
    """FAIL (reason `stale`) and re-enqueue RUNNING trials whose worker is gone, ending their MLflow runs
    (in experiment `experiment`, MLflow id `experiment_id`) as KILLED; returns how many."""
    from optuna.trial import TrialState

    host, now, reclaimed = socket.gethostname(), time.time(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _dead(trial, host, now):
            continue
        # MLflow first: should a call fail here, the trial is still RUNNING and the next start reclaims it
        recorded = trial.user_attrs.get("mlflow_run_id")
        orphans = tracking.running_runs(experiment_id, study=study.study_name, trial=str(trial.number))
        for run_id in dict.fromkeys([recorded, *orphans]):
            if run_id and tracking.run_exists(run_id):  # not in this store: the journal came from another machine
                tracking.terminate(run_id, "KILLED", reason="stale")
        set_trial_user_attr(study, trial, "reason", "stale")
        study.tell(trial.number, state=TrialState.FAIL)
        requeue(study, experiment, enqueued_point(study, trial) or trial.params, recorded)
        reclaimed += 1
    return reclaimed
