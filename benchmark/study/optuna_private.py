"""Every use of Optuna's private API, in one place, each line with the reason no public call does.

`tests/test_optuna_private.py` exercises each function against the installed Optuna, so an Optuna
release that renames or changes one fails there, by name, not mid-study; pyproject pins the range
those tests were run on.
"""
from __future__ import annotations

from typing import Any

FIXED_PARAMS = "fixed_params"  # the system attribute `Study.enqueue_trial` stores the enqueued point under


def pop_waiting_trial(study: Any) -> Any | None:
    """Atomically take one WAITING trial (the storage's compare-and-set) as a `Trial`, or None when
    there is none. Public `Study.ask` would create a fresh sampled trial when the queue is empty; a
    grid must not grow."""
    import optuna

    trial_id = study._pop_waiting_trial_id()
    return None if trial_id is None else optuna.trial.Trial(study, trial_id)


def set_trial_user_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """Set a user attribute of any trial of the study, `FrozenTrial` included (public
    `Trial.set_user_attr` needs the live `Trial`; a heartbeat thread and stale-trial reclaim have only
    the id or the frozen record)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def enqueued_point(study: Any, trial: Any) -> dict:
    """The point (and seed) a trial was enqueued with, read back from storage (public
    `Trial.params` only holds what has been suggested so far)."""
    return study._storage.get_trial(trial._trial_id).system_attrs.get(FIXED_PARAMS, {})


def next_waiting_point(study: Any) -> dict | None:
    """The point (and seed) `pop_waiting_trial` would take next, without taking it (no public call
    peeks at the queue): `Study._pop_waiting_trial_id` takes the first WAITING trial the storage lists."""
    from optuna.trial import TrialState

    waiting = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
    return waiting[0].system_attrs.get(FIXED_PARAMS, {}) if waiting else None
