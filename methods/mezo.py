"""MeZO (Malladi et al., 2023): ZO-SGD with a two-point SPSA estimate along one Gaussian direction."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from benchmark.config import non_negative, param, positive
from benchmark.registry import register_method
from methods.base import LossFn, Schedule, StepResult, decays, trainable
from methods.zo import ZOEngine, mix


@dataclass
class MeZOHparams:
    lr: float = param(1e-6, "learning rate", positive, "> 0")
    eps: float = param(1e-3, "perturbation scale epsilon", positive, "> 0")
    weight_decay: float = param(0.0, "decoupled weight decay (not on biases or norm weights)", non_negative, ">= 0")


@register_method("mezo")
class MeZO:
    """Trains every trainable parameter, embeddings included (as the original MeZO does)."""

    Hparams = MeZOHparams
    train_mode = False  # dropout off: both forwards of a step must see the same network

    def __init__(self, hp: MeZOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        self.hp = hp
        self.schedule = schedule
        self.seed = seed
        self.engine = ZOEngine(model, trainable(model), decays(model))
        self.history: list[tuple[int, float, float]] = []  # (seed, coeff, decay) per step: the rollback log

    def step(self, step: int, loss_fn: LossFn) -> StepResult:
        seed, eps = mix(self.seed, step), self.hp.eps
        with torch.no_grad():
            with self.engine.perturbed(seed, eps):
                loss_plus = loss_fn().item()
            with self.engine.perturbed(seed, -eps):
                loss_minus = loss_fn().item()
        grad = (loss_plus - loss_minus) / (2 * eps)
        lr = self.hp.lr * self.schedule(step)
        coeff, decay = lr * grad, lr * self.hp.weight_decay
        self.engine.update(seed, coeff, decay)
        self.history.append((seed, coeff, decay))
        return StepResult(loss=(loss_plus + loss_minus) / 2, forward_passes=2,
                          metrics={"train/projected_grad": grad})

    def checkpoint(self) -> int:
        return len(self.history)

    def restore(self, checkpoint: int) -> None:
        """Walk the update log back to `checkpoint` steps: kilobytes of log instead of a weight copy."""
        while len(self.history) > checkpoint:
            self.engine.revert(*self.history.pop())
