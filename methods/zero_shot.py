"""Zero-shot: the pre-trained model scored as it is (no training step runs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from methods.base import Declared, Fresh, LossFn, Schedule, StepResult
from methods.registry import register_method


@dataclass
class NoHparams:
    pass


@register_method("zero-shot")
class ZeroShot(Declared, first_order=False, trains=False, projects=False, replays=False):
    """Scores dev and test with the pre-trained weights; its runs train no step (`steps=0` is recorded)."""

    Hparams = NoHparams

    def __init__(self, hp: NoHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        pass

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        raise RuntimeError("zero-shot does not train")

    def diagnostics(self) -> dict[str, float]:
        return {}

    def forwards(self) -> int:
        return 0

    def state_copies(self) -> float:
        return 0.0

    def checkpoint(self) -> Any:
        return None

    def restore(self, checkpoint: Any) -> None:
        pass
