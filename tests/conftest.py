"""Fixtures only; shared helpers live in `tests/helpers.py`."""
import os

import pytest
import torch

# Under pytest-xdist (`make test` runs `-n auto`) the workers share the cores: each gets its share of threads, and
# so do the CLI processes its tests start (they read OMP_NUM_THREADS), instead of every process spinning on all.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = max(1, _cores // _workers)
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)

if not torch.cuda.is_available():  # before anything imports triton: its kernels run interpreted on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

from benchmark.models import LoadedModel
from tests.helpers import tiny as load_tiny


@pytest.fixture
def tiny() -> LoadedModel:
    return load_tiny()

