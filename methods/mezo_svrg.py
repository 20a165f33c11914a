"""MeZO-SVRG (Gautam et al., ICML 2024, "Variance-reduced Zeroth-Order Methods for Fine-Tuning Language Models";
amazon-science/mezo_svrg `models/llm_module.py`, `training_step_MeZO_SVRG`, driven by `finetune_llm.py`'s
`finetune_ZO_SVRG`).

Every q-th step (step % q == 0) is an anchor step: the two-point estimate over a large batch, g_a = (F(theta +
eps z_a) - F(theta - eps z_a)) / (2 eps) with F the mean loss over `anchor_batches` batches (the step's own and
the next ones), the anchor theta_bar <- theta is kept, and theta <- theta - lr_a g_a z_a. The other steps are
corrected: on the step's batch, g_1 at theta along z_1 and g_2 at theta_bar along z_2 (two independent draws, as
released: each estimate draws its own seed; `shared_z` takes one), and theta <- theta - lr (g_1 z_1 - g_2 z_2
+ g_a z_a). Forwards: 2 a batch at an anchor step, 4 at a corrected one (all stacked into one forward where
it fits), 2 anchor_batches + 4 (q - 1) per q steps (`cycle`). Defaults: the released full-parameter launcher
(`finetune_llm_full.sh`: --q 2, --samplesize 512 over --batchsize 64 for the anchor, so 8 batches, and the
rates of its sweep, --lr in {1e-5, 1e-4} for the anchor step, --lr_mezosvrg_mb in {1e-5, 1e-6}: 1e-4 and 1e-6
here), eps 1e-3, no decay.

Memory: the anchor theta_bar, one copy of the trained weights on their device. g_a z_a is regenerated from its
seed (the released code stores it: `self.full_grad`, another copy).

Departures, each with its reason:
- The anchor is a copy of the weights, as the paper's algorithm has it (theta_bar <- theta_t). The released
  "copy", `self.parameters = parameters.copy()`, copies the list of (name, Parameter) pairs, so it aliases the
  live weights: the "anchor" estimate is taken at the current weights (after the step's first in-place
  update), the correction g_1 z_1 - g_2 z_2 has mean zero, and the step is MeZO's plus the stale anchor
  direction. That cannot have produced the variance reduction the paper measures; `tests/test_fidelity.py`
  shows the two rules apart.
- The released rates are annealed when the minibatch loss rises (both divided by --anneal when the mean loss
  over the last 2 epochs exceeds 1.05 times the mean two such windows before, checked once an epoch, floors
  1e-5 and 1e-6); here they follow the harness's schedule. The rule reads a fifth forward a step (the loss
  after the update) that the harness does not spend.
- The anchor batch is `anchor_batches` fresh training batches; the released one is the whole training sample
  (512 examples), the same every anchor step.
- z from our generator and (run seed, step) seeds (the anchor's z_a the step seed's, z_1 and z_2 from
  mix(step seed, 1) and mix(step seed, 2)), replayable from the seed log; the released seeds are numpy draws.
- The train loss logged is the step's own batch's probes' mean (the released code logs a fifth forward).
- `weight_decay` (0; the released update has none) is decoupled and off biases and norms, on the step's own
  direction only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import param, positive
from methods.base import Fresh, LossFn, Schedule
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo import mix
from methods.zo.method import TwoPointHparams, ZOMethod


@dataclass
class MeZOSVRGHparams(TwoPointHparams):
    lr: float = param(1e-6, "learning rate of the corrected steps (eta_2, --lr_mezosvrg_mb)", positive, "> 0")
    anchor_lr: float = param(1e-4, "learning rate of the anchor steps (eta_1, --lr)", positive, "> 0")
    anchor_interval: int = param(2, "q: every q-th step is an anchor step", lambda q: q >= 2, ">= 2")
    anchor_batches: int = param(8, "batches the anchor's estimate averages (the released 512 examples / 64)",
                                positive, ">= 1")
    shared_z: bool = param(False, "the corrected step's two estimates along one z (false: two draws, as released)")


@register_method("mezo-svrg")
class MeZOSVRG(ZOMethod):
    """MeZO's estimate with SVRG's control variate: an anchor over a large batch every q steps."""

    Hparams = MeZOSVRGHparams
    record_keys = ("seed", "grads", "lr")
    toy = {"lr": "5e-4", "anchor_lr": "5e-3", "anchor_batches": "2"}

    def __init__(self, hp: MeZOSVRGHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.anchor = [torch.empty_like(p) for p in self.engine.params]  # theta_bar, set at the first step
        self.anchored: tuple[int, float] | None = None  # the last anchor step's (seed, g_a)

    def is_anchor(self, step: int) -> bool:
        return step % self.hp.anchor_interval == 0

    def cycle(self) -> int:
        return self.hp.anchor_interval

    def passes(self, step: int) -> int:
        return 2 * self.hp.anchor_batches if self.is_anchor(step) else 4

    def forwards(self) -> float:
        q = self.hp.anchor_interval
        return (2 * self.hp.anchor_batches + 4 * (q - 1)) / q

    def state_copies(self) -> float:
        return super().state_copies() + 1.0  # theta_bar

    def seeds(self, seed: int) -> tuple[int, int]:
        """z_1's and z_2's seeds at a corrected step."""
        return (seed, seed) if self.hp.shared_z else (mix(seed, 1), mix(seed, 2))

    def corrected(self, seed: int):
        """The variants [theta + eps z_1, theta - eps z_1, theta_bar + eps z_2, theta_bar - eps z_2]."""
        engine, eps = self.engine, self.hp.eps
        here, there = self.seeds(seed)
        at_theta = self.along_z(here, eps)

        def make(i: int, rows: slice, dtype: torch.dtype | None, which: Sequence[int]) -> list[torch.Tensor]:
            out = at_theta(i, rows, dtype, [k for k in which if k < 2])
            wanted = [k for k in which if k >= 2]
            if wanted:
                z = engine.direction(there, i, rows)
                for k in wanted:
                    t = engine.borrow(i, rows)
                    torch.add(self.anchor[i][rows], z, alpha=eps if k == 2 else -eps, out=t)
                    out.append(t)
            return out

        return make

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        eps, stacked = self.hp.eps, self.hp.dual_forward
        if self.is_anchor(step):
            if fresh is None and self.hp.anchor_batches > 1:
                raise ValueError("MeZO-SVRG's anchor step needs fresh training batches")
            probes = self.along_z(seed, eps)
            batches = [loss_fn] + [fresh() for _ in range(self.hp.anchor_batches - 1)]  # type: ignore[misc]
            losses = [self.score(b, 2, probes, stacked) for b in batches]
            plus = sum(pair[0] for pair in losses) / len(losses)
            minus = sum(pair[1] for pair in losses) / len(losses)
            grads, lr, loss = [(plus - minus) / (2 * eps)], self.hp.anchor_lr, sum(losses[0]) / 2
        else:
            p1, m1, p2, m2 = self.score(loss_fn, 4, self.corrected(seed), stacked)
            grads, lr, loss = [(p1 - m1) / (2 * eps), (p2 - m2) / (2 * eps)], self.hp.lr, (p1 + m1) / 2
        record = {"seed": seed, "grads": grads, "lr": lr * self.schedule(step)}
        return record, loss, {names.PROJECTED_GRAD: grads[0]}

    @torch.no_grad()
    def descend(self, step: int, record: dict[str, Any]) -> None:
        """Anchor step: theta_bar <- theta, then theta <- keep theta - lr g_a z_a. Corrected step: theta <- keep
        theta - lr (g_1 z_1 - g_2 z_2 + g_a z_a). Each axpy logged for rollback (theta_bar is not: a restore
        brings back the weights, and no step follows it)."""
        seed, lr, grads = record["seed"], record["lr"], record["grads"]
        decay = lr * self.hp.weight_decay
        if self.is_anchor(step):
            for bar, p in zip(self.anchor, self.engine.params):
                bar.copy_(p)
            self.anchored = (seed, grads[0])
            self.update(seed, lr * grads[0], decay)
            return
        if self.anchored is None:
            raise ValueError(f"MeZO-SVRG: step {step} corrects an anchor that was never taken")
        here, there = self.seeds(seed)
        self.update(here, lr * grads[0], decay)
        self.update(there, -lr * grads[1], 0.0)
        self.update(self.anchored[0], lr * self.anchored[1], 0.0)


register_method("mezo-svrg-lora")(with_lora(MeZOSVRG, {"lr": "3e-2", "anchor_lr": "1e-1"},
                                            lr=1e-4, anchor_lr=1e-3, eps=1e-2))
