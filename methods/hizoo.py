"""HiZOO (Zhao et al., ICLR 2025): ZO-SGD preconditioned by a diagonal Hessian estimate.

Per step: L(theta), and L(theta +- eps * H^-1/2 z). The gradient estimate is
g = (L+ - L-) / (2 eps) * H^-1/2 z; the curvature c = |L+ + L- - 2 L| / (2 eps^2) smooths the
diagonal as H <- (1 - alpha) H + alpha * c * H * z^2 (the paper's Sigma^-1/2 diag(zz^T) Sigma^-1/2).
Three forward passes a step, not the four of the released code. We store S = H^-1/2 (what the
perturbation and the update use), one parameter-sized buffer: S <- S / sqrt(1 - alpha + alpha c z^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from benchmark.config import param
from benchmark.registry import register_method
from methods.base import Fresh, LossFn, Schedule, StepResult
from methods.lora import with_lora
from methods.mezo import MeZO, MeZOHparams
from methods.zo import mix


def _unit_interval(x: float) -> bool:
    return 0 <= x < 1


@dataclass
class HiZOOHparams(MeZOHparams):
    hessian_smooth: float = param(1e-8, "alpha: smoothing of the diagonal Hessian estimate", _unit_interval, "in [0, 1)")


@register_method("hizoo")
class HiZOO(MeZO):
    """MeZO's engine with a diagonal-Hessian-scaled perturbation (one extra forward, one extra buffer)."""

    Hparams = HiZOOHparams

    def __init__(self, hp: HiZOOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.scales = [torch.ones_like(p) for p in self.engine.params]  # S = H^-1/2, H starts at identity

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        seed, eps = mix(self.seed, step), self.hp.eps
        with torch.no_grad():
            loss = loss_fn().item()
            with self.engine.perturbed(seed, eps, self.scales):
                loss_plus = loss_fn().item()
            with self.engine.perturbed(seed, -eps, self.scales):
                loss_minus = loss_fn().item()
        grad = (loss_plus - loss_minus) / (2 * eps)
        curvature = abs(loss_plus + loss_minus - 2 * loss) / (2 * eps**2)
        lr = self.hp.lr * self.schedule(step)
        args = (seed, lr * grad, lr * self.hp.weight_decay, self.hp.hessian_smooth * curvature)
        self._update(*args)
        self.undo.append(partial(self._revert, *args))
        return StepResult(loss=loss, forward_passes=3,
                          metrics={"train/projected_grad": grad, "train/curvature": curvature})

    def _factor(self, z: torch.Tensor, ac: float) -> torch.Tensor:
        """sqrt(1 - alpha + alpha c z^2) = sqrt(H_new / H), computed in z's buffer."""
        return z.square_().mul_(ac).add_(1.0 - self.hp.hessian_smooth).sqrt_()

    @torch.no_grad()
    def _update(self, seed: int, coeff: float, decay: float, ac: float) -> None:
        for i, (p, s) in enumerate(zip(self.engine.params, self.scales)):
            z = self.engine.direction(seed, i)
            if decay and self.engine.decay[i]:
                p.mul_(1.0 - decay)
            p.addcmul_(z, s, value=-coeff)
            s.div_(self._factor(z, ac))

    @torch.no_grad()
    def _revert(self, seed: int, coeff: float, decay: float, ac: float) -> None:
        for i, (p, s) in enumerate(zip(self.engine.params, self.scales)):
            z = self.engine.direction(seed, i)
            p.addcmul_(z, s.mul_(self._factor(z.clone(), ac)), value=coeff)
            if decay and self.engine.decay[i]:
                p.div_(1.0 - decay)


register_method("hizoo-lora")(with_lora(HiZOO, lr=1e-4, eps=1e-2))
