"""Every trained method's first steps against the trajectory recorded in tests/golden.json (`tests/golden.py`
says how and when to re-record). Tolerances: losses and metrics to 1e-4 relative (a CPU's different kernels
round the last bits differently; a new z moves the first loss by far more), weights' fingerprint to 1e-6."""
import json

import pytest

from tests.golden import FILE, trajectory
from tests.helpers import TRAINED

RECORDED = json.loads(FILE.read_text())


def test_every_trained_method_has_a_recorded_trajectory():
    assert sorted(RECORDED) == sorted(TRAINED)


@pytest.mark.parametrize("method", TRAINED)
def test_the_first_steps_are_the_recorded_ones(method):
    ours, theirs = trajectory(method), RECORDED[method]
    for step, (a, b) in enumerate(zip(ours["steps"], theirs["steps"], strict=True)):
        assert a.keys() == b.keys(), step
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (step, key)
    for key, value in theirs["weights"].items():
        assert ours["weights"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
