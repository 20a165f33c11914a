"""FZOO (Dang et al., ICLR 2026, "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning Large Language Models
towards Adam-Scale Speed"; DKmiyan/FZOO `trainer.py`, `zo_step` + `zo_update`).

A step draws N Rademacher directions r_k (+-1 each value, `torch.randint(0, 2) * 2 - 1`), scores the batch at
theta + eps r_k for each (one-sided) and at theta, and takes g_k = (f(theta + eps r_k) - f(theta)) / (N sigma),
sigma the population standard deviation of the N probe losses (`torch.std(unbiased=False)`, theta's loss not
among them); then theta <- theta - lr sum_k g_k r_k, the probes in order, at a constant rate and with no weight
decay. N + 1 forwards a step. Released defaults (`run.py`, `fzoo.sh`): N = 8, lr 1e-5, eps 1e-3; the README's
OPT-13B example: lr 5e-5, eps 1e-4. The normalisation makes the step size independent of the loss's scale: the
paper's "normalized-SGD" reading.

The N + 1 forwards run as one forward on the batch stacked N + 1 times (`stacked`, as the dual forward of
MeZO; the released code runs them one after another, its `ParallelOPTForCausalLM` batching them on OPT).

Departures, each with its reason:
- r from our generator's sign stream and (run seed, step, probe) seeds (`Directions.probe_signs`): the top bit
  of each Philox word (torch-normal: the sign of its normal), replayable and fused (a probe is one pass over
  theta; the update one pass for all N probes, `axpy_signs`). The released r comes from `torch.randint` after
  `torch.manual_seed` of a numpy draw per probe.
- The losses and g_k in float64 (the released tensor arithmetic is float32).
- sigma = 0 (every probe scored the same) steps by 0: the released division gives inf or NaN weights.
- `weight_decay` (0; the released update has none) is decoupled and off biases and norms, as for MeZO.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.core.settings import param, positive
from methods.base import Fresh, LossFn
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import mix
from methods.zo.method import ZOHparams, ZOMethod


@dataclass
class FZOOHparams(ZOHparams):
    lr: float = param(1e-5, "learning rate", positive, "> 0")
    eps: float = param(1e-3, "perturbation scale epsilon", positive, "> 0")
    probes: int = param(8, "Rademacher probes a step (N)", lambda n: n >= 2, ">= 2")
    stacked: bool = param(True, "the N + 1 forwards as one forward on the batch stacked N + 1 times (false: one "
                                "forward each; on a GPU the run falls back to it when the stack does not fit)")


@register_method("fzoo")
class FZOO(ZOMethod):
    """N one-sided Rademacher probes a step, each probe's step normalised by the spread of their losses."""

    Hparams = FZOOHparams
    record_keys = ("seed", "grads", "lr")
    toy = {"lr": "1e-3", "probes": "4"}

    def seeds(self, seed: int) -> list[int]:
        return [mix(seed, k) for k in range(self.hp.probes)]

    def losses(self, seeds: list[int], loss_fn: LossFn) -> list[float]:
        """[f(theta), f(theta + eps r_1), ..., f(theta + eps r_N)]: stacked (`stacked`) or one forward each."""
        engine, eps = self.engine, self.hp.eps

        def make(i: int, rows: slice, dtype: torch.dtype | None, which) -> list[torch.Tensor]:
            out = []
            for k in which:
                if k == 0:
                    out.append(engine.params[i][rows])
                    continue
                t = engine.borrow(i, rows)
                engine.directions.probe_signs(seeds[k - 1], i, rows, eps, t)
                out.append(t)
            return out

        return self.score(loss_fn, len(seeds) + 1, make, self.hp.stacked)

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        loss0, *probed = self.losses(self.seeds(seed), loss_fn)
        sigma = statistics.pstdev(probed)
        n = len(probed)
        grads = [(loss - loss0) / (n * sigma) if sigma else 0.0 for loss in probed]
        return {"seed": seed, "grads": grads, "lr": self.hp.lr * self.schedule(step)}, loss0, {}

    def forwards(self) -> int:
        return self.hp.probes + 1

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """theta <- keep theta - lr sum_k g_k r_k, logged for rollback."""
        self.move(record)
        self.log(lambda: self.move(record, undo=True))

    @torch.no_grad()
    def move(self, record: dict[str, Any], undo: bool = False) -> None:
        lr = record["lr"]
        self.engine.directions.axpy_signs(self.seeds(record["seed"]), self.keep(lr),
                                          [lr * g for g in record["grads"]], undo)


register_method("fzoo-lora")(with_lora(FZOO, {"lr": "1e-2"}, lr=1e-4, eps=1e-2))
