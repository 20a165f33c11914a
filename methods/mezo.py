"""MeZO (Malladi et al., 2023): ZO-SGD with a two-point SPSA estimate along one Gaussian direction."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import non_negative, one_of, param, positive
from methods.base import Declared, Fresh, LossFn, Schedule, StepResult, decays, trainable
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import ZOEngine, mix
from methods.zo.generators import GENERATORS


@dataclass
class ZOHparams:
    """What every ZO method here takes: its step size, its decay and z's generator."""

    lr: float = param(1e-6, "learning rate", positive, "> 0")
    weight_decay: float = param(0.0, "decoupled weight decay (not on biases or norm weights)", non_negative, ">= 0")
    generator: str = param("auto", "z's generator: philox (counter-based, the same z on CPU and GPU) | torch-normal "
                           "(torch's normal_, version-1 seed logs) | auto (philox where its kernel runs)",
                           *one_of("auto", *GENERATORS))


@dataclass
class MeZOHparams(ZOHparams):
    eps: float = param(1e-3, "perturbation scale epsilon", positive, "> 0")
    dual_forward: bool = param(True, "both probes in one pass over the model on the batch stacked twice, z drawn once "
                                     "for the pair (false: two forwards, z drawn for each; on a GPU the run falls back "
                                     "to it when the stacked batch does not fit)")
    keep_z: bool = param(False, "torch-normal only: keep z from the probes for the update, one draw a step instead of "
                                "two, at the memory of one copy of the trained weights (what DiZO's released code "
                                "does; philox never stores z)")


@register_method("mezo")
class MeZO(Declared, first_order=False, trains=True, projects=False, replays=True):
    """Trains every trainable parameter, embeddings included (as the original MeZO does)."""

    Hparams = MeZOHparams
    record_keys: tuple[str, ...] = ("seed", "grad", "lr")  # what every step's record holds (the seed log checks it)

    def __init__(self, hp: MeZOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        self.hp = hp
        self.schedule = schedule
        self.seed = seed
        self.engine = ZOEngine(model, trainable(model), decays(model), keep_directions=getattr(hp, "keep_z", False),
                                generator=hp.generator)
        self.undo: list[Callable[[], None]] = []  # one closure per change to the weights: the rollback log

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        seed, eps = mix(self.seed, step), self.hp.eps
        with torch.no_grad():
            if self.hp.dual_forward and self.engine.fits(2):
                with self.engine.probes(seed, eps):
                    loss_plus, loss_minus = loss_fn.copies(2).tolist()
            else:
                with self.engine.measured(), self.engine.perturbed(seed, eps):
                    loss_plus = loss_fn.copies(1).item()
                with self.engine.perturbed(seed, eps, sign=-1):
                    loss_minus = loss_fn.copies(1).item()
        record = {"seed": seed, "grad": (loss_plus - loss_minus) / (2 * eps), "lr": self.hp.lr * self.schedule(step)}
        self.descend(record)
        return StepResult(loss=(loss_plus + loss_minus) / 2, forward_passes=self.forwards(),
                          metrics={names.PROJECTED_GRAD: record["grad"]}, record=record)

    def forwards(self) -> int:
        return 2

    def state_copies(self) -> float:
        return 1.0 if self.engine.directions.keep else 0.0  # keep_z: the probes' z, held for the update

    def share(self, values: int) -> float:
        """`values` (a count) in copies of the trained weights."""
        return values / sum(p.numel() for p in self.engine.params)

    def three_points(self, seed: int, loss_fn: LossFn, scales: list[torch.Tensor] | None = None) -> list[float]:
        """The batch's loss at theta, theta + eps z s and theta - eps z s (`scales`: HiZOO's factor), in one
        stacked forward (`dual_forward`) or one forward each."""
        eps = self.hp.eps
        with torch.no_grad():
            if self.hp.dual_forward and self.engine.fits(3):
                with self.engine.probes(seed, eps, scales, center=True):
                    return loss_fn.copies(3).tolist()
            with self.engine.measured():
                loss = loss_fn.copies(1).item()
            with self.engine.perturbed(seed, eps, scales=scales):
                loss_plus = loss_fn.copies(1).item()
            with self.engine.perturbed(seed, eps, sign=-1, scales=scales):
                return [loss, loss_plus, loss_fn.copies(1).item()]

    def descend(self, record: dict[str, Any]) -> None:
        """The step's update from its record: theta <- (1 - lr wd) theta - lr g z(seed). The run and its
        replay both go through here, so they do the same float operations on the same numbers."""
        lr = record["lr"]
        self.update(record["seed"], lr * record["grad"], lr * self.hp.weight_decay)

    def replay(self, step: int, record: dict[str, Any]) -> None:
        self.descend(record)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """theta <- (1 - decay) theta - coeff z(seed), logged for rollback; `gains` scales some
        parameters' steps (the engine's per-parameter multipliers)."""
        self.engine.update(seed, coeff, decay, gains)
        self.undo.append(partial(self.engine.revert, seed, coeff, decay, gains))

    def diagnostics(self) -> dict[str, float]:
        return {}

    def checkpoint(self) -> int:
        return len(self.undo)

    def restore(self, checkpoint: int) -> None:
        """Walk the undo log back to `checkpoint`: kilobytes of log instead of a weight copy."""
        while len(self.undo) > checkpoint:
            self.undo.pop()()


register_method("mezo-lora")(with_lora(MeZO, lr=1e-4, eps=1e-2))
