"""Every trained method's first steps against the trajectory recorded in tests/golden.json (`tests/golden.py`
says how and when to re-record, and derives the tolerances from what rounding can do). A new z moves the first
loss and gradient by far more, a step 1% longer moves what the weights moved by 1e-2 (both shown to fail when
issue 28 landed)."""
import copy
import json
import os
import subprocess
import sys

import pytest

from tests.golden import FILE, mismatches, trajectory
from tests.helpers import TRAINED

RECORDED = json.loads(FILE.read_text())
ROOT = FILE.parent.parent


def test_every_trained_method_has_a_recorded_trajectory():
    assert sorted(RECORDED) == sorted(TRAINED)


@pytest.mark.parametrize("method", TRAINED)
def test_the_first_steps_are_the_recorded_ones(method):
    assert mismatches(method, trajectory(method), RECORDED[method]) == []


def test_the_weights_bound_catches_a_moved_dot_and_a_longer_step():
    """The dot's bound is scaled by what the weights moved, not by the dot itself (a cancellation): a change
    of 1% of `moved` in the dot, or of `moved` by 1%, is a mismatch; the AVX2 run's LOZO-M is not."""
    theirs = copy.deepcopy(RECORDED["lozo-m"])  # with the fingerprint LOZO-M had before issue 42's new defaults
    theirs["weights"] = {"sum": 141.96853725092978, "dot": 0.10555647133260493, "moved": 3.7607347808458744}
    avx2 = copy.deepcopy(theirs)
    avx2["weights"]["dot"] = 0.1058495975934548  # the same under forced AVX2 (Intel Xeon, 2026-12-07)
    assert mismatches("lozo-m", avx2, theirs) == []
    for key, value in (("dot", theirs["weights"]["dot"] + 0.01 * theirs["weights"]["moved"]),
                       ("moved", theirs["weights"]["moved"] * 1.01)):
        changed = copy.deepcopy(theirs)
        changed["weights"][key] = value
        assert [line.split(":")[0] for line in mismatches("lozo-m", changed, theirs)] == [f"lozo-m weights {key}"]


# AVX2 forced on torch's kernels (ATen's dispatch), oneDNN and MKL: what an AVX2-only AMD EPYC computes, the lowest
# x86 kind the harness meets (AVX-512 runs natively on the Xeons; AMX cannot be forced onto a CPU without it). The
# LoRA twins run their base method's code on the adapters: their share of this budget goes to the other methods.
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@pytest.mark.slow
def test_the_recorded_trajectories_hold_under_avx2():
    methods = [m for m in TRAINED if not m.endswith("-lora")]
    done = subprocess.run([sys.executable, "-m", "tests.golden", "--check", *methods], cwd=ROOT, text=True,
                          capture_output=True, timeout=600, env={**os.environ, **AVX2})
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.strip().endswith("(AVX2)"), done.stdout
