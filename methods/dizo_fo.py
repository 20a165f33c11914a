"""DiZO-FO (the paper's DiZO-dagger): DiZO's steps and projection schedule, with the projection learned by Adam
through backprop instead of a ZO search. Its search rules are objects with their own parameters: `RatioAdam`
(our default) and `ReleasedAdam` (Skilteee/DiZO `DiZO.forward` + `dizo_trainer.dizo_iters`); `DiZOFO` says why
the default departs from the released code.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from benchmark.core.settings import one_of, param
from methods.base import Fresh, LossFn
from methods.dizo import GUARD, DiZO, ProjectionHparams
from methods.lora import with_lora
from methods.registry import register_method

L1_RELEASED = 1e-3  # the released DiZO-FO loss: CE + 1e-3 * sum |gamma|


def _lr_ok(x: float | None) -> bool:
    return x is None or x > 0


@dataclass
class DiZOFOHparams(ProjectionHparams):
    projection_rule: str = param("ratio", "ratio (Adam on the ratios from 1, re-init and clip as dizo) | released "
                                 "(Skilteee/DiZO dizo_iters)", *one_of("ratio", "released"))
    projection_lr: float | None = param(None, "Adam learning rate of the search; none: the rule's (ratio 1e-2, "
                                        "released 0.1)", _lr_ok, "> 0 or none")


class RatioAdam:
    """DiZO-FO's default search: Adam on the ratio itself, from 1 (the current weights), re-initialised and
    clipped as the ZO search is (`reinit`, `clip_range`), a fresh Adam (lr 1e-2) per round, no L1 term."""

    def __init__(self, lr: float | None, tau: float | None) -> None:
        self.lr, self.tau = lr or 1e-2, tau

    def search(self, method: "DiZOFO", fresh: Fresh, gamma: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
        device, dtype = method.search_device()
        r = method.ratios(gamma, ts).to(device=device, dtype=dtype).clone().requires_grad_(True)
        clip = None if self.tau is None else partial(torch.clamp, min=1 - self.tau, max=1 + self.tau)
        last = method.learn(fresh, r, torch.optim.Adam([r], lr=self.lr), lambda v: v, 0.0, clip)
        return r.detach().to("cpu", torch.float64) * (ts + GUARD), last

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing lives across rounds

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        pass


class ReleasedAdam:
    """Skilteee/DiZO `DiZO.forward` + `dizo_trainer.dizo_iters`: gamma itself, from 0 (the first forward sits
    at theta0), never re-initialised or clipped, one Adam (lr 0.1) across all rounds, loss + 1e-3 sum |gamma|."""

    def __init__(self, lr: float | None) -> None:
        self.lr = lr or 0.1
        self.kept: tuple[torch.Tensor, torch.optim.Optimizer] | None = None  # gamma and its Adam, across rounds

    def search(self, method: "DiZOFO", fresh: Fresh, gamma: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
        device, dtype = method.search_device()
        if self.kept is None:
            g = torch.zeros(len(ts), device=device, dtype=dtype, requires_grad=True)
            self.kept = g, torch.optim.Adam([g], lr=self.lr)
        g, optimizer = self.kept
        t = ts.to(device=device, dtype=dtype)
        last = method.learn(fresh, g, optimizer, lambda v: v / (t + GUARD), L1_RELEASED)
        return g.detach().to("cpu", torch.float64), last

    def state_dict(self) -> dict[str, Any]:
        """gamma and its Adam, which live across rounds (no record rebuilds Adam's moments)."""
        if self.kept is None:
            return {}
        g, optimizer = self.kept
        return {"gamma": g.detach().cpu(), "adam": optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        if "gamma" in state:
            g = state["gamma"].to(device).requires_grad_(True)
            optimizer = torch.optim.Adam([g], lr=self.lr)
            optimizer.load_state_dict(state["adam"])
            self.kept = g, optimizer


@register_method("dizo-fo")
class DiZOFO(DiZO):
    """DiZO with the projection learned by Adam through backprop (the paper's DiZO-dagger): the search's
    memory is first-order (activations kept for backward), only for the projection iterations.

    The released code (`projection_rule=released`, `ReleasedAdam`) learns gamma itself from 0, never
    re-initialised or clipped, with one Adam (lr 0.1) across all rounds and 1e-3 * sum |gamma| added to the
    loss: a pull towards theta0 in the ratio's units scaled by ||delta||. Our default (`ratio`, `RatioAdam`)
    departs on purpose: it learns the ratio from 1 (the current weights) with DiZO's re-init and clipping,
    a fresh Adam at lr 1e-2 per round and no L1 term, so that a round can only rescale delta within the
    clip range instead of pulling the first rounds back to theta0.
    """

    Hparams = DiZOFOHparams
    toy = {"lr": "2e-3", "projection_interval": "20"}

    @staticmethod
    def search_rule(hp: DiZOFOHparams) -> RatioAdam | ReleasedAdam:
        return ReleasedAdam(hp.projection_lr) if hp.projection_rule == "released" else RatioAdam(hp.projection_lr, hp.clip_range)

    def search_device(self) -> tuple[torch.device, torch.dtype]:
        """Where the search's variable lives: the weights' device, fp32 at least (fp16/bf16 models: fp32 ratios)."""
        p = self.engine.params[0]
        return p.device, torch.promote_types(p.dtype, torch.float32)

    def learn(self, fresh: Fresh, variable: torch.Tensor, optimizer: torch.optim.Optimizer,
              ratios_of, penalty: float, clip=None) -> LossFn:
        """`projection_iters` Adam steps on `variable` through the projected forward; returns the last batch."""
        frozen = [p for p in self.engine.params if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)  # gradients for the search only
        try:
            for _ in range(self.hp.projection_iters):
                loss_fn = fresh()
                optimizer.zero_grad(set_to_none=True)
                with torch.enable_grad(), self._projected(ratios_of(variable)):
                    (loss_fn() + penalty * variable.abs().sum()).backward()
                optimizer.step()
                if clip is not None:
                    with torch.no_grad():
                        variable.copy_(clip(variable))
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return loss_fn

    def search(self, step: int, fresh: Fresh, gamma: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
        return self.rule.search(self, fresh, gamma, ts)

    def projection_passes(self) -> int:
        return self.hp.projection_iters + 2

    def state_dict(self) -> dict[str, Any]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state, self.search_device()[0])


register_method("dizo-fo-lora")(with_lora(DiZOFO, {"lr": "1e-1"}, lr=1e-4, eps=1e-2))
