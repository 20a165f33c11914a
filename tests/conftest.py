"""Fixtures only; shared helpers live in `tests/helpers.py`."""
import os

import pytest
import torch

if not torch.cuda.is_available():  # before anything imports triton: its kernels run interpreted on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

from benchmark.models import LoadedModel
from tests.helpers import tiny as load_tiny


@pytest.fixture
def tiny() -> LoadedModel:
    return load_tiny()
