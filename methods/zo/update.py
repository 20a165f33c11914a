"""The ZO update, theta <- (1 - decay) theta - coeff z(seed), and its inverse (how MeZO walks back to its
best checkpoint without a weight copy). Decay skips biases and norm weights; `gains` scales some parameters'
steps (DiZO's learning-rate projection ablation). z comes from `Directions.axpy`: fused into the update
where the generator's kernel runs (theta read once and written once, z never stored)."""
from __future__ import annotations

import torch

from methods.zo.directions import Directions


def _factors(decays: list[bool], coeff: float, decay: float, gains: dict[int, float] | None) -> tuple[list, list]:
    """Per parameter: (what theta keeps, the step's coefficient on z)."""
    keep, step = [], []
    for i, decays_i in enumerate(decays):
        gain = gains.get(i, 1.0) if gains else 1.0
        keep.append(1.0 - decay * gain if decay and decays_i else 1.0)
        step.append(coeff * gain)
    return keep, step


@torch.no_grad()
def update(directions: Directions, decays: list[bool], seed: int, coeff: float, decay: float,
           gains: dict[int, float] | None = None) -> None:
    directions.axpy(seed, *_factors(decays, coeff, decay, gains))


@torch.no_grad()
def revert(directions: Directions, decays: list[bool], seed: int, coeff: float, decay: float,
           gains: dict[int, float] | None = None) -> None:
    """Undo `update(...)` up to rounding."""
    directions.axpy(seed, *_factors(decays, coeff, decay, gains), undo=True)
