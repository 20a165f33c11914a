"""MeZO (Malladi et al., 2023): ZO-SGD with a two-point SPSA estimate along one Gaussian direction
(princeton-nlp/MeZO `large_models/trainer.py`, `zo_step` + `zo_update`; tests/test_fidelity.py holds it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from benchmark.core import names
from benchmark.core.settings import param
from methods.base import Fresh, LossFn
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo.method import TwoPointHparams, Variants, ZOMethod


@dataclass
class MeZOHparams(TwoPointHparams):
    keep_z: bool = param(False, "torch-normal only: keep z from the probes for the update, one draw a step instead of "
                                "two, at the memory of one copy of the trained weights (what DiZO's released code "
                                "does; philox never stores z)")


@register_method("mezo")
class MeZO(ZOMethod):
    """g = (f(theta + eps z) - f(theta - eps z)) / (2 eps); theta <- (1 - lr wd) theta - lr g z."""

    Hparams = MeZOHparams
    record_keys: ClassVar[tuple[str, ...]] = ("seed", "grad", "lr")
    toy = {"lr": "2e-3"}

    def keeps_directions(self) -> bool:
        return self.hp.keep_z

    def probes(self, seed: int, scales: list[torch.Tensor] | None = None, center: bool = False) -> Variants:
        """The variants [theta,] theta + eps z s, theta - eps z s."""
        return self.along_z(seed, self.hp.eps, scales, center)

    def losses(self, seed: int, loss_fn: LossFn, scales: list[torch.Tensor] | None = None,
               center: bool = False) -> list[float]:
        """[f(theta),] f(theta + eps z s), f(theta - eps z s): stacked (`dual_forward`) or one forward each."""
        return self.score(loss_fn, 2 + center, self.probes(seed, scales, center), self.hp.dual_forward)

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        loss_plus, loss_minus = self.losses(seed, loss_fn)
        record = {"seed": seed, "grad": (loss_plus - loss_minus) / (2 * self.hp.eps),
                  "lr": self.hp.lr * self.schedule(step)}
        return record, (loss_plus + loss_minus) / 2, {names.PROJECTED_GRAD: record["grad"]}

    def forwards(self) -> int:
        return 2

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """theta <- (1 - lr wd) theta - lr g z(seed)."""
        lr = record["lr"]
        self.update(record["seed"], lr * record["grad"], lr * self.hp.weight_decay)


register_method("mezo-lora")(with_lora(MeZO, {"lr": "1e-1"}, lr=1e-4, eps=1e-2))
