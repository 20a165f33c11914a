"""The Optuna internals `benchmark/study/optuna_private.py` relies on, exercised one by one against the
installed Optuna on both storages we use: a release that renames or changes one fails here, by name,
before a study meets it. pyproject pins the Optuna range these tests were run on."""
import optuna
import pytest

from benchmark.study import optuna_private
from benchmark.study.storage import open_storage


@pytest.fixture(params=["journal", "sqlite"])
def study(request, tmp_path):
    url = str(tmp_path / "s.journal") if request.param == "journal" else f"sqlite:///{tmp_path}/s.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=open_storage(url))


def test_pop_waiting_trial_takes_each_enqueued_trial_once_then_none(study):
    for lr in ("1e-3", "1e-2"):
        study.enqueue_trial({"lr": lr})
    popped = [optuna_private.pop_waiting_trial(study) for _ in range(3)]
    assert all(isinstance(t, optuna.trial.Trial) for t in popped[:2]) and popped[2] is None
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.RUNNING] * 2  # claimed, and no sampled trial was added


def test_enqueued_point_reads_back_what_was_enqueued(study):
    study.enqueue_trial({"lr": "1e-3", "seed": 2})
    trial = optuna_private.pop_waiting_trial(study)
    assert optuna_private.enqueued_point(study, trial) == {"lr": "1e-3", "seed": 2}
    frozen = study.get_trials(deepcopy=False)[0]  # a FrozenTrial answers too (stale-trial reclaim)
    assert optuna_private.enqueued_point(study, frozen) == {"lr": "1e-3", "seed": 2}


def test_set_trial_user_attr_works_on_live_and_frozen_trials(study):
    study.enqueue_trial({"lr": "1e-3"})
    trial = optuna_private.pop_waiting_trial(study)
    optuna_private.set_trial_user_attr(study, trial, "heartbeat", 1.5)
    frozen = study.get_trials(deepcopy=False)[0]
    optuna_private.set_trial_user_attr(study, frozen, "reason", "stale")
    assert study.get_trials(deepcopy=False)[0].user_attrs == {"heartbeat": 1.5, "reason": "stale"}


def test_next_waiting_point_is_what_the_next_pop_takes_lowest_seed_first_and_takes_nothing(study):
    assert optuna_private.next_waiting_point(study) is None
    for seed in (3, 1, 2):
        study.enqueue_trial({"lr": "1e-3", "seed": seed})
    seen = []
    while (point := optuna_private.next_waiting_point(study)) is not None:
        assert optuna_private.next_waiting_point(study) == point  # peeking claims nothing
        trial = optuna_private.pop_waiting_trial(study)
        assert optuna_private.enqueued_point(study, trial) == point
        seen.append(point["seed"])
    assert seen == [1, 2, 3]  # lowest seed first, whatever the order they were enqueued in


def test_a_seed_put_back_in_the_queue_runs_before_later_seeds(study):
    """An interrupted final trial is re-enqueued at the queue's end; it must not wait behind the later seeds
    (a pair's lagging member would run after the next pair: seen in the leaderboard study, DiZO's seed 9
    queued behind seed 10)."""
    for seed in (1, 2, 3):
        study.enqueue_trial({"lr": "1e-3", "seed": seed})
    first = optuna_private.pop_waiting_trial(study)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"lr": "1e-3", "seed": 1})  # what an interruption does
    assert optuna_private.next_waiting_point(study)["seed"] == 1
    assert optuna_private.enqueued_point(study, optuna_private.pop_waiting_trial(study))["seed"] == 1
    assert [optuna_private.next_waiting_point(study)["seed"]] == [2]
