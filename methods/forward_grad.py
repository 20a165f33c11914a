"""Forward-Grad (Baydin et al., 2022, "Gradients without Backpropagation"), as ZO-Bench runs it:
ZO-Bench/ZO-LLM `zo-bench/trainer.py`, `forward_grad_step` + `forward_grad_update`.

One forward-mode pass (`torch.func.jvp`) gives the loss and its exact directional derivative along a Gaussian
v, d = grad f . v; the update is theta <- theta - lr (d v + wd theta), the decay skipping biases and layer
norms (`"bias" not in n and "layer_norm" not in n and "layernorm" not in n`), at a constant learning rate.
So the step is MeZO's update with d in place of the finite difference (the base's `update` and undo log): a
seed log replays it the same way.

Memory, honestly: v is materialised for every trained parameter (one copy of them; MeZO never stores z),
and the forward-mode pass carries a tangent beside every activation, about twice a forward's activations
(`benchmark perf` measures it).

Departures, each with its reason:
- v from our generator and (run seed, step) seeds, as MeZO's z (the released code: `torch.randn_like` after
  `torch.manual_seed` of a numpy draw): replayable, the same on CPU and GPU.
- The model is in eval mode (no dropout), as for every ZO method here; the released step leaves the HF
  Trainer's train mode on (dropout where the model has it; Llama has none).
- Attention runs torch's math SDPA during the pass: forward-mode AD is not implemented for the fused CPU and
  flash kernels (torch 2.13); the released code ran its own eager attention, which is the same arithmetic.
- The decay rule is the harness's (`methods.base.decays`: not biases, not norm modules), which differs from
  the released name test only where a norm's name lacks "layernorm" (Llama's final `model.norm`); the
  default decay is 0, as in every released sweep.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmark.core import names
from methods.base import Fresh, LossFn
from methods.lora import with_lora
from methods.registry import register_method
from methods.zo.method import ZOHparams, ZOMethod


@dataclass
class ForwardGradHparams(ZOHparams):
    """lr, weight decay and v's generator: a forward-mode pass has no eps and no second probe."""


class _Loss(nn.Module):
    """The batch's loss as a module's forward, so `functional_call` can swap the model's parameters for
    the forward-mode duals while the loss closure runs."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self) -> torch.Tensor:
        return self.loss_fn()


@register_method("forward-grad")
class ForwardGrad(ZOMethod):
    """Exact directional derivative along a Gaussian v by one forward-mode pass; steps -lr d v."""

    Hparams = ForwardGradHparams
    record_keys = ("seed", "grad", "lr")
    toy = {"lr": "2e-3"}

    def directional(self, seed: int, loss_fn: LossFn) -> tuple[float, float]:
        """(loss, grad f . v(seed)) in one forward-mode pass."""
        engine = self.engine
        call, keys = _Loss(engine.model, loss_fn), [f"model.{n}" for n in engine.names]
        tangents = tuple(engine.direction(seed, i) for i in range(len(engine.params)))

        def loss_at(*params: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(call, dict(zip(keys, params)), ())

        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            loss, derivative = torch.func.jvp(loss_at, tuple(p.detach() for p in engine.params), tangents)
        loss, derivative = torch.stack([loss, derivative]).tolist()  # one read back to the host, not two
        return loss, derivative

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        loss, derivative = self.directional(seed, loss_fn)
        record: dict[str, Any] = {"seed": seed, "grad": derivative, "lr": self.hp.lr * self.schedule(step)}
        return record, loss, {names.PROJECTED_GRAD: derivative}

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """theta <- (1 - lr wd) theta - lr d v(seed): MeZO's update."""
        lr = record["lr"]
        self.update(record["seed"], lr * record["grad"], lr * self.hp.weight_decay)

    def forwards(self) -> int:
        return 1  # one forward-mode pass (v, one copy of the weights, lives only during it)


register_method("forward-grad-lora")(with_lora(ForwardGrad, {"lr": "1e-1"}, lr=1e-4))
