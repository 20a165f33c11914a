"""LOZO and LOZO-M (Chen et al., ICLR 2025, "Enhancing Zeroth-Order Fine-Tuning for Language Models with
Low-Rank Structures"; optsuite/LOZO).

LOZO (`large_models/LOZOtrainer.py`, `lowrank_zo_step` + `lowrank_zo_update`): a matrix parameter is probed
along U V^T, U (rows x r) drawn every step, V (cols x r) drawn at every step with step % interval == 0 and kept
in between; every other parameter along a full Gaussian z. g = (f(theta + eps D) - f(theta - eps D)) / (2 eps)
and theta <- theta - lr (g D + wd theta), the decay off biases and layer norms, at a constant rate.
Defaults: rank 2, interval 50, eps 1e-3, those of `large_models/run_lozo.py`'s dataclass and of the README's
command (OPT-13B SST-2: RANK=2 STEP_INTERVAL=50); the README's range for OPT-13B: lr 1e-6 or 1e-7, rank 1 or 2,
interval 50 or 100. The launcher beside them, `large_models/lozo.sh`, assigns RANK=1, STEP_INTERVAL=100, LR=1e-7
and TASK=DROP outright (not `${RANK:-...}`), so the README's command run through it trains rank 1, interval 100
on DROP whatever it sets: `rank=1 interval=100` is that run.

LOZO-M (only in `medium_models/src/LOZOtrainer.py`, `lowrank_zo_update_momentum`, `--lozo_optimizer sgdm`):
the momentum lives in the low-rank factor, M (rows x r) <- beta M + (1 - beta) g U and theta <- theta - lr
(M V^T + wd theta); at a step where V is redrawn, M is carried into the new V's coordinates, M <- beta M
V_old^T V / cols + (1 - beta) g U (M <- g U at the first step, before any V_old), V_old being kept at the step
before each redraw. A non-matrix parameter keeps a full-size momentum, M <- g z at step 0, else beta M + (1 -
beta) g z. Defaults: the medium_models README's LOZO-M command, the one the paper's RoBERTa-large rows ran
(`RANK=4 STEP_INTERVAL=100 LOZO_OPTIMIZER=sgdm bash lozo.sh`, lozo.sh's BETA1=0.9): rank 4, interval 100,
beta1 0.9 (until issue 42: `medium_models/run_lozo.py`'s dataclass, rank 2, interval 50, beta1 0.7, which the
launcher overrides).

A quirk of the released code, kept as the default (`released_refresh=true`): on a step that redraws V, the
perturbation draws V and then U from the step's seed, but the update reseeds and draws only U, so the update's
U (and every later parameter's U or z) comes from a shifted stream: that step's update is along a direction
independent of the one its g was measured on. Here that step's update draws U and z from their own seed, mix(step
seed, STALE), independent in the same way (the released stream's exact overlap is not reproduced); the
interval-th steps are 1 in 50 by default. `released_refresh=false`: the update uses the probed direction.

Departures, each with its reason:
- U, V and z from our generator and (run seed, step) seeds (`methods/zo/lowrank.py`): replayable, the same on
  CPU and GPU; the released code draws them with `torch.randn` after `torch.manual_seed` of a numpy draw.
- Matrices are 2-d parameters (`ndim >= 2` released, where a >2-d one would fail on `size(0)`, `size(1)`).
- The decay rule is the harness's (not biases, not norm modules), as for Forward-Grad; default decay 0.
- The train loss logged is the probes' mean (the released code logs f(theta + eps D)).
- LOZO-M's state (M, V_old) is rebuilt by replaying the seed log, as ZO-Adam's moments are: a checkpoint holds
  no state, and its best-on-dev checkpoint is a host copy of the weights (the momentum cannot walk back).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.core.settings import param, positive
from methods.base import Schedule
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import lowrank, mix
from methods.zo.factored import Factored, Factors
from methods.zo.method import TwoPointHparams

STALE = 0x5A5A  # the tag of a redraw step's update seed under released_refresh


def _beta(x: float) -> bool:
    return 0 <= x < 1


@dataclass
class LOZOHparams(TwoPointHparams):
    rank: int = param(2, "rank r of U and V", positive, "> 0")
    interval: int = param(50, "steps between redraws of V (nu)", positive, "> 0")
    released_refresh: bool = param(True, "a step that redraws V updates along an independent direction, as the "
                                         "released code's reseeded stream does (false: along the probed one)")


@register_method("lozo")
class LOZO(Factored):
    """Low-rank ZO: each matrix probed along U V^T, V redrawn every `interval` steps."""

    Hparams = LOZOHparams
    toy = {"lr": "1e-3", "interval": "10"}  # 2e-3: 150 full-batch steps went from 0.696 to 0.806 on an AMD EPYC

    def draw(self, seed: int) -> dict[int, torch.Tensor]:
        """V (cols x r) of every matrix."""
        params, r = self.engine.params, self.hp.rank
        return {i: lowrank.gaussian(self.engine.directions, seed, lowrank.V, i, params[i].shape[1], r)
                for i in sorted(self.matrix)}

    def factors(self, step: int, seed: int) -> Factors:
        params, directions, r = self.engine.params, self.engine.directions, self.hp.rank
        return {i: (lowrank.gaussian(directions, seed, lowrank.U, i, params[i].shape[0], r), v.t(), None)
                for i, v in self.kept(step).items()}

    def state_copies(self) -> float:
        params = self.engine.params
        return super().state_copies() + self.share(sum(params[i].shape[1] * self.hp.rank for i in self.matrix))  # V

    def update_seed(self, step: int, seed: int) -> int:
        return mix(seed, STALE) if self.hp.released_refresh and step % self.hp.interval == 0 else seed


@dataclass
class LOZOMHparams(LOZOHparams):
    rank: int = param(4, "rank r of U and V", positive, "> 0")
    interval: int = param(100, "steps between redraws of V (nu)", positive, "> 0")
    beta1: float = param(0.9, "momentum of the low-rank factor", _beta, "in [0, 1)")


@register_method("lozo-m")
class LOZOM(LOZO):
    """LOZO with momentum kept in the low-rank factor M (rows x r) and carried across redraws of V."""

    Hparams = LOZOMHparams
    walks_back = False  # the momentum has no inverse: a host copy

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.m: dict[int, torch.Tensor] = {}
        self.v_old: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def descend(self, step: int, record: dict[str, Any]) -> None:
        """`lowrank_zo_update_momentum`, line by line (the module docstring), autocast off (`lowrank.exact`)."""
        seed, factors = self.update_factors(step, record)
        g, lr, beta, engine, nu = record["grad"], record["lr"], self.hp.beta1, self.engine, self.hp.interval
        keep = self.keep(lr)
        with lowrank.exact(engine.params[0]):
            for i, theta in enumerate(engine.params):
                if i in factors:
                    u, vt = (f.to(theta.dtype) for f in factors[i][:2])  # the released factors are in theta's dtype
                    v = vt.t()
                    if step % nu == 0:
                        if i in self.v_old:
                            v_old = self.v_old[i]
                            self.m[i] = beta * self.m[i] @ v_old.t() @ v / v_old.shape[0] + (1 - beta) * g * u
                        else:
                            self.m[i] = g * u
                    else:
                        if step % nu == nu - 1:
                            self.v_old[i] = v
                        self.m[i] = beta * self.m[i] + (1 - beta) * g * u
                    lowrank.axpy(theta, self.m[i], vt, keep[i], lr)
                else:
                    z = engine.direction(seed, i)
                    self.m[i] = g * z if step == 0 else beta * self.m[i] + (1 - beta) * g * z
                    if keep[i] != 1.0:
                        theta.mul_(keep[i])
                    theta.sub_(lr * self.m[i])

    def state_copies(self) -> float:
        params = self.engine.params
        held = sum(sum(params[i].shape) * self.hp.rank for i in self.matrix) + sum(params[i].numel() for i in self.others)
        return super().state_copies() + self.share(held)  # M (rows x r, or whole), V_old


register_method("lozo-lora")(with_lora(LOZO, {"lr": "1e-1"}, lr=1e-4, eps=1e-2))
