"""MeZO with a random sparse z: the "SparseMeZO" baseline as OPTML-Group/ZO-Muon runs it (`llm/MeZOTrainer.py`,
`zo_perturb_parameters` + `zo_update` with `--sparsity`; its README's command: SPARSITY=0.8).

Each value of z is kept with probability p and zeroed otherwise, a fresh Bernoulli mask every step (the released
`torch.bernoulli(full_like(z, sparsity))` after `torch.manual_seed` of the step's seed, so the update redraws the
probes' mask); the probes are theta +- eps (z * mask), g = (f+ - f-) / (2 eps), and theta <- theta - lr (g z * mask
+ wd theta), the decay off biases and layer norms. The released `sparsity` is the keep probability (0.8 keeps 80%
of z), named `keep_prob` here. This is not SparseMeZO's own rule (Liu et al., 2024), which masks by the weights'
magnitude (a threshold on |theta| fixed per layer); its repository is not in the stored index, so that rule is not
offered: hence the registered name says "random mask".

Departures, each with its reason:
- z and the mask from our generator and (run seed, step) seeds: the mask of a value is w < Phi^-1(p) for w a
  second standard normal drawn, from the seed mix(step seed, MASK), for the same (parameter, value) as z: the
  keep probability is exactly p, and both replay from the seed log and are the same on CPU and GPU.
- The train loss logged is the probes' mean (the released code logs f(theta + eps z)).
- The decay rule is the harness's (not biases, not norm modules); the default decay is 0, as released.
- z * mask is drawn a part of a parameter at a time and applied with torch ops (the fused kernels compute z
  alone): a step draws two normals a value for the probes and two for the update.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from benchmark.core.settings import param
from methods.lora import with_lora
from methods.mezo import MeZO
from methods.registry import register_method
from methods.zo import mix
from methods.zo.method import TwoPointHparams, Variants

MASK = 0x3A5C  # the tag of a step's mask stream


@dataclass
class RandomMaskHparams(TwoPointHparams):
    keep_prob: float = param(0.8, "probability that a value of z is kept (the released `--sparsity`: 0.8 keeps 80%)",
                             lambda p: 0 < p <= 1, "in (0, 1]")


@register_method("mezo-random-mask")
class RandomMaskMeZO(MeZO):
    """MeZO along z * mask, the mask a fresh Bernoulli(keep_prob) draw per value and step."""

    Hparams = RandomMaskHparams
    toy = {"lr": "3e-3"}

    def __init__(self, hp: RandomMaskHparams, *args: Any) -> None:
        super().__init__(hp, *args)
        self.threshold = torch.special.ndtri(torch.tensor(hp.keep_prob, dtype=torch.float64)).item()

    def keeps_directions(self) -> bool:
        return False

    def direction(self, seed: int, i: int, rows: slice) -> torch.Tensor:
        """z * mask for rows `rows` of parameter i (whole draw chunks), a fresh tensor."""
        z = self.engine.direction(seed, i, rows)
        return z.mul_(self.engine.direction(mix(seed, MASK), i, rows) < self.threshold)

    def probes(self, seed: int, scales: list[torch.Tensor] | None = None, center: bool = False) -> Variants:
        """The variants [theta,] theta + eps z m, theta - eps z m."""
        engine, eps = self.engine, self.hp.eps

        def make(i: int, rows: slice, dtype: torch.dtype | None, which: Sequence[int]) -> list[torch.Tensor]:
            signs = [k - center for k in which]  # -1: theta, 0: plus, 1: minus
            d = self.direction(seed, i, rows) if any(s >= 0 for s in signs) else None
            out = []
            for s in signs:
                if s < 0:
                    out.append(engine.params[i][rows])
                    continue
                t = engine.borrow(i, rows)
                torch.add(engine.params[i][rows], d, alpha=eps if s == 0 else -eps, out=t)
                out.append(t)
            return out

        return make

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """theta <- keep theta - lr g z * mask, logged for rollback."""
        self.move(record)
        self.log(lambda: self.move(record, undo=True))

    @torch.no_grad()
    def move(self, record: dict[str, Any], undo: bool = False) -> None:
        lr, seed = record["lr"], record["seed"]
        coeff = lr * record["grad"]
        for i, (p, keep) in enumerate(zip(self.engine.params, self.keep(lr))):
            for rows in self.engine.parts(i):
                theta = p[rows]
                if undo:
                    theta.add_(self.direction(seed, i, rows), alpha=coeff)
                    if keep != 1.0:
                        theta.div_(keep)
                    continue
                if keep != 1.0:
                    theta.mul_(keep)
                theta.add_(self.direction(seed, i, rows), alpha=-coeff)


register_method("mezo-random-mask-lora")(with_lora(RandomMaskMeZO, {"lr": "1e-1"}, lr=1e-4, eps=1e-2))
