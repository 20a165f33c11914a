"""LOZO and LOZO-M (Chen et al., ICLR 2025, "Enhancing Zeroth-Order Fine-Tuning for Language Models with
Low-Rank Structures"; optsuite/LOZO).

LOZO (`large_models/LOZOtrainer.py`, `lowrank_zo_step` + `lowrank_zo_update`): a matrix parameter is probed
along U V^T, U (rows x r) drawn every step, V (cols x r) drawn at every step with step % interval == 0 and kept
in between; every other parameter along a full Gaussian z. g = (f(theta + eps D) - f(theta - eps D)) / (2 eps)
and theta <- theta - lr (g D + wd theta), the decay off biases and layer norms, at a constant rate.
Released defaults (`run_lozo.py`): rank 2, interval 50, eps 1e-3; the README's range for OPT-13B: lr 1e-6 or
1e-7, rank 1 or 2, interval 50 or 100.

LOZO-M (only in `medium_models/src/LOZOtrainer.py`, `lowrank_zo_update_momentum`, `--lozo_optimizer sgdm`):
the momentum lives in the low-rank factor, M (rows x r) <- beta M + (1 - beta) g U and theta <- theta - lr
(M V^T + wd theta); at a step where V is redrawn, M is carried into the new V's coordinates, M <- beta M
V_old^T V / cols + (1 - beta) g U (M <- g U at the first step, before any V_old), V_old being kept at the step
before each redraw. A non-matrix parameter keeps a full-size momentum, M <- g z at step 0, else beta M + (1 -
beta) g z. Released defaults (`medium_models/run_lozo.py`): rank 2, interval 50, beta1 0.7.

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
from functools import partial
from typing import Any

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import param, positive
from methods.base import Fresh, LossFn, Schedule, StepResult, copy_back, host_copy
from methods.lora import with_lora
from methods.mezo import MeZO, MeZOHparams
from methods.registry import register_method
from methods.zo import lowrank, mix

STALE = 0x5A5A  # the tag of a redraw step's update seed under released_refresh


def _beta(x: float) -> bool:
    return 0 <= x < 1


Factors = dict[int, tuple[torch.Tensor, torch.Tensor, "torch.Size | None"]]  # i -> (left, right, matrix shape)


class Factored(MeZO):
    """MeZO with a factored direction for every matrix parameter (`factors`) and a full Gaussian z for the
    rest: the probes (stacked, or one forward each) and the update, shared by LOZO and SubZero."""

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.matrix = set(lowrank.matrices(self.engine.params))
        self.others = set(range(len(self.engine.params))) - self.matrix
        self._drawn: tuple[int, dict[int, Any]] = (-1, {})

    def redraw(self, step: int) -> int:
        """The last step at or before `step` that redrew the kept factors (every `interval` steps)."""
        return step - step % self.hp.interval

    def kept(self, step: int) -> dict[int, Any]:
        """The factors kept between redraws (LOZO's V, SubZero's U and V) at this step: `draw(seed)` at the
        redraw step's seed, a function of the run seed and that step, drawn once per interval."""
        at = self.redraw(step)
        if self._drawn[0] != at:
            self._drawn = (at, self.draw(mix(self.seed, at)))
        return self._drawn[1]

    def draw(self, seed: int) -> dict[int, Any]:
        """Each matrix's kept factors at a redraw step's seed."""
        raise NotImplementedError

    def factors(self, step: int, seed: int) -> Factors:
        """Each matrix parameter's (left, right, shape): its direction is left @ right, viewed as `shape`
        (None: the parameter's own)."""
        raise NotImplementedError

    def update_seed(self, step: int, seed: int) -> int:
        """The seed the step's update draws its directions with (the probes': `seed`)."""
        return seed

    def _view(self, i: int, shape: torch.Size | None, rows: slice) -> tuple[torch.Tensor, slice]:
        p = self.engine.params[i]
        return (p[rows], rows) if shape is None else (p.view(shape), slice(None))

    def _probes(self, seed: int, factors: Factors, signs: list[int]) -> Any:
        """Forwards inside run on len(signs) stacked copies, copy k at theta + signs[k] eps D."""
        eps, engine = self.hp.eps, self.engine

        def make(i: int, rows: slice, dtype: torch.dtype | None) -> list[torch.Tensor]:
            if i not in factors:
                plus, minus = engine.pair(seed, eps, None, i, rows, dtype)
                pair = {1: plus, -1: minus}
                for s in {1, -1} - set(signs):
                    engine.give_back(pair[s])
                return [pair[s] for s in signs]
            left, right, shape = factors[i]
            theta, part = self._view(i, shape, rows)
            out = []
            for s in signs:
                t = engine.borrow(i, rows)
                lowrank.probe(theta, left[part], right, s * eps, t if shape is None else t.view(shape))
                out.append(t)
            return out

        return engine.stacked(len(signs), make)

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        seed = mix(self.seed, step)
        factors = self.factors(step, seed)
        with torch.no_grad():
            if self.hp.dual_forward and self.engine.fits(2):
                with self._probes(seed, factors, [1, -1]):
                    loss_plus, loss_minus = loss_fn.copies(2).tolist()
            else:
                with self.engine.measured(), self._probes(seed, factors, [1]):
                    loss_plus = loss_fn.copies(1).item()
                with self._probes(seed, factors, [-1]):
                    loss_minus = loss_fn.copies(1).item()
        record = {"seed": seed, "grad": (loss_plus - loss_minus) / (2 * self.hp.eps),
                  "lr": self.hp.lr * self.schedule(step)}
        self.descend_at(step, record, None if self.update_seed(step, seed) != seed else factors)
        return StepResult(loss=(loss_plus + loss_minus) / 2, forward_passes=self.forwards(),
                          metrics={names.PROJECTED_GRAD: record["grad"]}, record=record)

    def replay(self, step: int, record: dict[str, Any]) -> None:
        self.descend_at(step, record)

    def descend_at(self, step: int, record: dict[str, Any], factors: Factors | None = None) -> None:
        """The step's update from its record: theta <- keep theta - lr g D (D along the update's directions)."""
        self.move(step, record, factors)
        self.undo.append(partial(self.move, step, record, None, True))

    @torch.no_grad()
    def move(self, step: int, record: dict[str, Any], factors: Factors | None = None, undo: bool = False) -> None:
        seed = self.update_seed(step, record["seed"])
        factors = factors if factors is not None else self.factors(step, seed)
        lr, engine = record["lr"], self.engine
        coeff = lr * record["grad"]
        keep = [1.0 - lr * self.hp.weight_decay if d else 1.0 for d in engine.decay]
        for i, (left, right, shape) in factors.items():
            theta, _ = self._view(i, shape, slice(None))
            lowrank.axpy(theta, left, right, keep[i], coeff, undo)
        if self.others:
            engine.directions.axpy(seed, keep, [coeff] * len(keep), undo, indices=self.others)


@dataclass
class LOZOHparams(MeZOHparams):
    rank: int = param(2, "rank r of U and V", positive, "> 0")
    interval: int = param(50, "steps between redraws of V (nu)", positive, "> 0")
    released_refresh: bool = param(True, "a step that redraws V updates along an independent direction, as the "
                                         "released code's reseeded stream does (false: along the probed one)")


@register_method("lozo")
class LOZO(Factored):
    """Low-rank ZO: each matrix probed along U V^T, V redrawn every `interval` steps."""

    Hparams = LOZOHparams

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
    beta1: float = param(0.7, "momentum of the low-rank factor", _beta, "in [0, 1)")


@register_method("lozo-m")
class LOZOM(LOZO):
    """LOZO with momentum kept in the low-rank factor M (rows x r) and carried across redraws of V."""

    Hparams = LOZOMHparams

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.m: dict[int, torch.Tensor] = {}
        self.v_old: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def descend_at(self, step: int, record: dict[str, Any], factors: Factors | None = None) -> None:
        """`lowrank_zo_update_momentum`, line by line (the module docstring), autocast off (`lowrank.exact`)."""
        with lowrank.exact(self.engine.params[0]):
            self._momentum_step(step, record, factors)

    def _momentum_step(self, step: int, record: dict[str, Any], factors: Factors | None) -> None:
        seed = self.update_seed(step, record["seed"])
        factors = factors if factors is not None else self.factors(step, seed)
        g, lr, beta, engine, nu = record["grad"], record["lr"], self.hp.beta1, self.engine, self.hp.interval
        for i, theta in enumerate(engine.params):
            keep = 1.0 - lr * self.hp.weight_decay if engine.decay[i] else 1.0
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
                lowrank.axpy(theta, self.m[i], vt, keep, lr)
            else:
                z = engine.direction(seed, i)
                self.m[i] = g * z if step == 0 else beta * self.m[i] + (1 - beta) * g * z
                if keep != 1.0:
                    theta.mul_(keep)
                theta.sub_(lr * self.m[i])

    def state_copies(self) -> float:
        params = self.engine.params
        held = sum(sum(params[i].shape) * self.hp.rank for i in self.matrix) + sum(params[i].numel() for i in self.others)
        return super().state_copies() + self.share(held)  # M (rows x r, or whole), V_old

    def checkpoint(self) -> Any:
        return host_copy(self.engine.params)

    def restore(self, checkpoint: Any) -> None:
        copy_back(self.engine.params, checkpoint)


register_method("lozo-lora")(with_lora(LOZO, lr=1e-4, eps=1e-2))
