"""Fixtures only; shared helpers live in `tests/helpers.py`."""
import pytest

from benchmark.models import LoadedModel
from tests.helpers import tiny as load_tiny


@pytest.fixture
def tiny() -> LoadedModel:
    return load_tiny()
