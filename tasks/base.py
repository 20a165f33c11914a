"""What a task is: raw pools of rows, a prompt template and candidates, a metric.

A task never knows about methods or models. The runner asks it for `Example`s (prompt,
candidate continuations, gold index) and scores candidates by the model's mean log-probability.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Row = dict


@dataclass(frozen=True)
class Example:
    prompt: str
    candidates: tuple[str, ...]  # continuations appended to the prompt, e.g. (" terrible", " great")
    gold: int


@dataclass(frozen=True)
class Pools:
    """Raw rows: `train` feeds train and dev samples, `heldout` feeds the test sample only."""

    train: list[Row]
    heldout: list[Row]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load_pools: Callable[[], Pools]
    render: Callable[[Row], Example]
    metric: str = "accuracy"


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
