"""SubZero (Yu et al., 2024, "Zeroth-Order Fine-Tuning of LLMs in Random Subspaces"; zimingyy/SubZero
`large_models/trainer.py`, `zo_subspace_step` + `zo_subspace_update`, `trainer=subzero_sgd`).

A matrix parameter (rows x cols; a matrix is what the released `len(torch.squeeze(p).shape) == 2` says, so a
1 x h parameter takes a full z) is probed along z = c U Z V with U (rows x r) and V^T (cols x r) orthonormal,
the Q of QR factorisations of Gaussian matrices (`fast_svd_method_v2`), redrawn at every step with step %
update_interval == 0 and kept in between, Z (r x r) Gaussian each step, and c = sqrt(rows cols / r^2) so that z
has a full Gaussian's norm; every other parameter along a full Gaussian z. g = (f(theta + eps z) - f(theta - eps
z)) / (2 eps) and the update is torch SGD on g z (momentum 0, no weight decay: `SGD(params, lr, momentum)`), at a
constant rate. Under LoRA (and prefix, prompt tuning) a matrix is first viewed as the most nearly square
(a, b) with a b = its size (`reshape_matrix`); the LoRA twin does that (`reshape=true`). Released defaults
(`run.py`): gauss_rank 8, update_interval 2000, eps 1e-3; the README's example (OPT-1.3B, prompt tuning):
rank 24, interval 1000, lr 1e-3, eps 1e-2.

Departures, each with its reason:
- U, V, Z and z from our generator and (run seed, step) seeds (`methods/zo/lowrank.py`): replayable, the same
  on CPU and GPU. The released U and V come from the global torch RNG as the previous step left it.
- c U (Z V) rather than (U Z V) c: the same product, rounded in another order.
- `weight_decay` (0, the released SGD has none) is decoupled and off biases and norms, as for MeZO.
- A matrix with a side shorter than the rank gets a subspace of that side's rank (the released QR returns a
  narrower Q and the product fails: a RoBERTa classifier's 2 x hidden weight at rank 8).
- torch SGD's momentum (`--momentum`, 0 by default and in the released commands) is not offered.
- The train loss logged is the probes' mean (the released code logs f(theta + eps z)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.core.settings import param, positive
from methods.base import Schedule
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import lowrank
from methods.zo.factored import Factored, Factors
from methods.zo.method import TwoPointHparams


def most_square(n: int) -> tuple[int, int]:
    """(a, b), a <= b, a b = n, b - a smallest: the released `reshape_matrix`."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


@dataclass
class SubZeroHparams(TwoPointHparams):
    rank: int = param(8, "rank r of the subspace (gauss_rank)", positive, "> 0")
    interval: int = param(2000, "steps between redraws of U and V (update_interval)", positive, "> 0")
    reshape: bool = param(False, "view each matrix as its most nearly square shape first (the released LoRA, "
                                 "prefix and prompt modes)")


@register_method("subzero")
class SubZero(Factored):
    """ZO in a random subspace: each matrix probed along c U Z V (U, V orthonormal, redrawn every `interval`)."""

    Hparams = SubZeroHparams
    toy = {"lr": "2e-3", "rank": "4", "interval": "20"}

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.shapes = {i: torch.Size(most_square(self.engine.params[i].numel())) if hp.reshape
                       else self.engine.params[i].squeeze().shape for i in self.matrix}

    @staticmethod
    def is_matrix(p: torch.Tensor) -> bool:
        """The released test, `len(torch.squeeze(p).shape) == 2`: a 1 x h parameter is a vector there."""
        return p.squeeze().dim() == 2

    def draw(self, seed: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """(U, V) of every matrix, orthonormal."""
        directions = self.engine.directions
        return {i: (lowrank.orthonormal(directions, seed, lowrank.U, i, shape[0], self.rank(i)),
                    lowrank.orthonormal(directions, seed, lowrank.V, i, shape[1], self.rank(i)).t())
                for i, shape in self.shapes.items()}

    def state_copies(self) -> float:
        held = sum((shape[0] + shape[1]) * self.rank(i) for i, shape in self.shapes.items())
        return super().state_copies() + self.share(held)  # U and V

    def rank(self, i: int) -> int:
        """The subspace's rank for matrix i: at most its smaller side."""
        return min(self.hp.rank, *self.shapes[i])

    def factors(self, step: int, seed: int) -> Factors:
        directions = self.engine.directions
        out: Factors = {}
        for i, (u, v) in self.kept(step).items():
            r = self.rank(i)
            shape, dtype = self.shapes[i], self.engine.params[i].dtype  # the released factors are in theta's dtype
            c = math.sqrt(shape[0] * shape[1] / (r * r))
            core = lowrank.gaussian(directions, seed, lowrank.CORE, i, r, r).to(dtype)
            with lowrank.exact(core):
                out[i] = (u.to(dtype), c * (core @ v.to(dtype)), None if shape == self.engine.params[i].shape else shape)
        return out


register_method("subzero-lora")(with_lora(SubZero, {"lr": "1e-1"}, lr=1e-4, eps=1e-2, reshape=True))
