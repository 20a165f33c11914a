"""Every use of Optuna's private API, in one place, each line with the reason no public call does.

`tests/test_optuna_private.py` exercises each function against the installed Optuna, so an Optuna
release that renames or changes one fails there, by name, not mid-study; pyproject pins the range
those tests were run on.
"""
from __future__ import annotations

from typing import Any

FIXED_PARAMS = "fixed_params"  # the system attribute `Study.enqueue_trial` stores the enqueued point under


def _waiting(study: Any) -> list[Any]:
    """The WAITING trials, lowest seed first (the queue's order among equal seeds): a seed put back after an
    interruption keeps its place before later seeds, so a pair's lagging member runs before the next pair.
    Optuna's own `Study._pop_waiting_trial_id` takes them in trial-number order, the re-queued seed last."""
    from optuna.trial import TrialState

    waiting = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
    return sorted(waiting, key=lambda t: int(t.system_attrs.get(FIXED_PARAMS, {}).get("seed", 0)))


def pop_waiting_trial(study: Any) -> Any | None:
    """Atomically take one WAITING trial (the storage's compare-and-set, as `Study._pop_waiting_trial_id`
    does), lowest seed first, as a `Trial`, or None when there is none. Public `Study.ask` would create a
    fresh sampled trial when the queue is empty; a grid must not grow."""
    import optuna

    for frozen in _waiting(study):
        try:
            if study._storage.set_trial_state_values(frozen._trial_id, state=optuna.trial.TrialState.RUNNING):
                return optuna.trial.Trial(study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker took and finished it meanwhile
            continue
    return None


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
    peeks at the queue)."""
    waiting = _waiting(study)
    return waiting[0].system_attrs.get(FIXED_PARAMS, {}) if waiting else None
