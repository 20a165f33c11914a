"""What MeZO's released engine does, kept only as the speed baseline of `benchmark perf`.

Four passes over the weights a step, each regenerating z with `torch.normal` under a global
`torch.manual_seed` (+eps, -2eps, +eps restore, then the update), out-of-place `param.data = ...`
writes, and (in perf) one row per candidate with the LM head over every position. Not registered
as a method: nobody should train with it, only measure against it.
"""
from __future__ import annotations

import torch
from torch import nn

from methods.base import Declared, Fresh, LossFn, Schedule, StepResult, decays, trainable
from methods.mezo import MeZOHparams
from methods.zo import mix


class ReferenceMeZO(Declared, first_order=False, trains=True, projects=False, replays=False):
    Hparams = MeZOHparams

    def __init__(self, hp: MeZOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        self.hp, self.schedule, self.seed = hp, schedule, seed
        self.params = trainable(model)
        self.decay = decays(model)

    def _perturb(self, seed: int, scale: float) -> None:
        torch.manual_seed(seed)
        for _, p in self.params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            p.data = p.data + scale * z * self.hp.eps

    @torch.no_grad()
    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        seed = mix(self.seed, step) % (2**63 - 1)
        self._perturb(seed, 1)
        loss1 = loss_fn().item()
        self._perturb(seed, -2)
        loss2 = loss_fn().item()
        self._perturb(seed, 1)
        grad = (loss1 - loss2) / (2 * self.hp.eps)
        lr = self.hp.lr * self.schedule(step)
        torch.manual_seed(seed)
        for name, p in self.params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            wd = self.hp.weight_decay if name in self.decay else 0.0
            p.data = p.data - lr * (grad * z + wd * p.data)
        return StepResult(loss=loss1, forward_passes=self.forwards())

    def forwards(self) -> int:
        return 2

    def state_copies(self) -> float:
        return 0.0

    def diagnostics(self) -> dict[str, float]:
        return {}

    def checkpoint(self) -> None:
        return None

    def restore(self, checkpoint: None) -> None:
        raise NotImplementedError("perf baseline only")
