"""DiZO (divergence-driven ZO): MeZO steps plus, every `projection_interval` steps, a learned
per-layer rescaling of the distance travelled from the pre-trained weights.

For each projected weight (q and v projections by default), with delta = theta - theta0 and
n = ||delta||, DiZO searches a ratio r = gamma / n and sets theta = theta0 + r * delta
(Algorithm 1). Choices the paper's text leaves loose follow the released code, which produced the
published numbers, and are switches here:
- gamma's perturbation and step are relative to n (`relative_projection=true`): gamma +- eps_p*n*u,
  step eta_p*n*g*u, u clipped so the perturbed ratio stays in [1-tau, 1+tau]. Appendix F's absolute
  form (`false`) lands on the clip whenever n is around 1e-3.
- each projection runs `projection_iters`=10 ZO iterations on fresh training batches (20 forward
  passes per interval), not the "two forward passes" of the text.
- the paper projects Q and V; the released code K and V. Default q,v (`projected_layers`).
Ablations (paper Tables 8, 9, C.2): `reinit`, `clip_range=none`, `projection_base=previous`
(theta_{t-1}: the weights at the previous projection), `projection_target=lr` (the learned ratios
scale the next interval's ZO steps of those layers instead of moving the weights).
theta0 is kept only for the projected weights, in pinned host memory on a GPU (it is needed once per
interval), so the GPU peak stays MeZO's; `theta0_on_device=true` keeps it on the GPU.
`dizo-fo` learns the ratios with Adam through autograd (the paper's DiZO-dagger rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from benchmark.config import one_of, param, positive
from benchmark.registry import register_method
from methods.base import Fresh, LossFn, Schedule, StepResult
from methods.layers import parse_roles, role_weights, valid_roles
from methods.lora import with_lora
from methods.mezo import MeZO, MeZOHparams
from methods.zo import mix


def _clip_ok(x: float | None) -> bool:
    return x is None or 0 < x < 1


@dataclass
class DiZOHparams(MeZOHparams):
    projection_interval: int = param(50, "steps between projections (kappa)", positive, ">= 1")
    projection_iters: int = param(10, "ZO iterations per projection, each on a fresh batch", positive, ">= 1")
    projection_eps: float = param(0.1, "perturbation of the ratio (relative to ||delta||)", positive, "> 0")
    projection_step_size: float = param(2.0, "step size of the ratio search", positive, "> 0")
    clip_range: float | None = param(0.2, "tau: ratio clipped to [1-tau, 1+tau]; none = no clipping", _clip_ok, "in (0, 1) or none")
    reinit: bool = param(True, "re-initialise gamma to ||delta|| before each search")
    projection_base: str = param("initial", "initial (theta0) | previous (weights at the last projection)", *one_of("initial", "previous"))
    projection_target: str = param("weights", "weights | lr (ratios scale the next interval's steps)", *one_of("weights", "lr"))
    projected_layers: str = param("q,v", "roles to project", valid_roles, "a comma list of q,k,v,o,dense")
    relative_projection: bool = param(True, "ratio perturbation and step relative to ||delta|| (released code)")
    theta0_on_device: bool = param(False, "keep theta0 on the GPU instead of pinned host memory")
    projection_lr: float = param(1e-2, "Adam learning rate of the ratios (dizo-fo only)", positive, "> 0")


@register_method("dizo")
class DiZO(MeZO):
    """MeZO steps plus a periodic, learned per-layer rescaling of theta - theta0 (Algorithm 1)."""

    Hparams = DiZOHparams

    def __init__(self, hp: DiZOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        index = {id(p): i for i, p in enumerate(self.engine.params)}
        self.layers = [(name, index[id(p)]) for name, p in role_weights(model, parse_roles(hp.projected_layers))]
        self.base = [self._store(self.engine.params[i]) for _, i in self.layers]
        self.gamma: torch.Tensor | None = None
        self.last_ratios: torch.Tensor | None = None

    def _store(self, p: torch.Tensor) -> torch.Tensor:
        if p.device.type == "cuda" and not self.hp.theta0_on_device:
            return p.detach().to("cpu", copy=True).pin_memory()
        return p.detach().clone()

    def _bounds(self) -> tuple[float, float]:
        tau = self.hp.clip_range
        return (1 - tau, 1 + tau) if tau is not None else (float("-inf"), float("inf"))

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        out = super().step(step, loss_fn)
        if (step + 1) % self.hp.projection_interval == 0:
            if fresh is None:
                raise ValueError("DiZO's projection needs fresh training batches")
            passes, ratios = self.project(step, fresh)
            out.forward_passes += passes
            out.metrics.update({"dizo/ratio_mean": ratios.mean().item(), "dizo/ratio_min": ratios.min().item(),
                                "dizo/ratio_max": ratios.max().item()})
        return out

    def _lerp(self, k: int, ratios: torch.Tensor) -> torch.Tensor:
        """theta0 + r * (theta - theta0) for projected layer k, built on the parameter's device."""
        p = self.engine.params[self.layers[k][1]]
        base = self.base[k].to(p.device, non_blocking=True)
        return torch.lerp(base, p.detach(), ratios[k].to(p.dtype))

    def _projected(self, ratios: torch.Tensor):
        slot = {i: k for k, (_, i) in enumerate(self.layers)}
        return self.engine.substituted(lambda i: self._lerp(slot[i], ratios), indices=slot)

    def norms(self) -> torch.Tensor:
        """||theta - theta0|| per projected layer (float64 on CPU: L scalars)."""
        out = []
        for k, (_, i) in enumerate(self.layers):
            p = self.engine.params[i]
            out.append(torch.linalg.vector_norm(p.detach().float() - self.base[k].to(p.device).float()).item())
        return torch.tensor(out, dtype=torch.float64)

    @torch.no_grad()
    def search(self, step: int, fresh: Fresh, ratios: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        """ZO search of the ratios, `projection_iters` iterations on fresh batches; returns the ratios."""
        hp, (lo, hi) = self.hp, self._bounds()
        gen = torch.Generator().manual_seed(mix(self.seed, step, 0xD120))
        for _ in range(hp.projection_iters):
            loss_fn = fresh()
            u = torch.randn(len(ratios), generator=gen, dtype=torch.float64)
            scale = torch.ones_like(norms) if hp.relative_projection else 1 / norms.clamp(min=1e-30)
            pert = hp.projection_eps * scale * u
            room = torch.minimum(ratios - lo, hi - ratios)  # keep r +- pert inside the clip range
            pert = torch.maximum(torch.minimum(pert, room), -room)
            with self._projected(ratios + pert):
                loss_plus = loss_fn().item()
            with self._projected(ratios - pert):
                loss_minus = loss_fn().item()
            grad = (loss_plus - loss_minus) / (2 * hp.projection_eps)
            ratios = (ratios - hp.projection_step_size * grad * pert / hp.projection_eps).clamp(lo, hi)
        return ratios

    def project(self, step: int, fresh: Fresh) -> tuple[int, torch.Tensor]:
        norms = self.norms()
        live = norms > 0  # LoRA's B starts at zero: no direction to rescale yet
        if self.hp.reinit or self.gamma is None:
            ratios = torch.ones_like(norms)
        else:
            ratios = torch.where(live, self.gamma / norms.clamp(min=1e-30), torch.ones_like(norms))
            ratios = ratios.clamp(*self._bounds())
        ratios = torch.where(live, self.search(step, fresh, ratios, norms), torch.ones_like(norms))
        self.gamma = ratios * norms
        self.last_ratios = ratios
        if self.hp.projection_target == "weights":
            self._apply(ratios)
        else:
            old = dict(self.gains)
            self.gains.update({i: float(r) for (_, i), r in zip(self.layers, ratios)})
            self.undo.append(partial(self._set_gains, old))
        if self.hp.projection_base == "previous":
            old_base = [b.clone() for b in self.base]
            for k, (_, i) in enumerate(self.layers):
                self.base[k].copy_(self.engine.params[i].detach())
            self.undo.append(partial(self._set_base, old_base))
        return self.projection_passes(), ratios

    def projection_passes(self) -> int:
        """Forward passes one projection adds (backward not counted)."""
        return 2 * self.hp.projection_iters

    @torch.no_grad()
    def _apply(self, ratios: torch.Tensor) -> None:
        for k, (_, i) in enumerate(self.layers):
            self.engine.params[i].copy_(self._lerp(k, ratios))
        self.undo.append(partial(self._unapply, ratios))

    @torch.no_grad()
    def _unapply(self, ratios: torch.Tensor) -> None:
        for k, (_, i) in enumerate(self.layers):
            if ratios[k] != 0:
                self.engine.params[i].copy_(self._lerp(k, 1 / ratios))

    def _set_gains(self, gains: dict[int, float]) -> None:
        self.gains = gains

    def _set_base(self, base: list[torch.Tensor]) -> None:
        for k, b in enumerate(base):
            self.base[k].copy_(b)


@register_method("dizo-fo")
class DiZOFO(DiZO):
    """DiZO with the ratios learned by Adam through backprop (the paper's DiZO-dagger): the search's
    memory is first-order (activations kept for backward), only for the projection iterations."""

    def search(self, step: int, fresh: Fresh, ratios: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        lo, hi = self._bounds()
        device = self.engine.params[0].device
        r = ratios.to(device=device, dtype=torch.float32).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([r], lr=self.hp.projection_lr)
        frozen = [p for p in self.engine.params if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)  # gradients for the ratios only
        try:
            for _ in range(self.hp.projection_iters):
                loss_fn = fresh()
                optimizer.zero_grad(set_to_none=True)
                with torch.enable_grad(), self._projected(r):
                    loss_fn().backward()
                optimizer.step()
                with torch.no_grad():
                    r.clamp_(lo, hi)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return r.detach().to("cpu", torch.float64)

    def projection_passes(self) -> int:
        return self.hp.projection_iters


register_method("dizo-lora")(with_lora(DiZO, lr=1e-4, eps=1e-2))
register_method("dizo-fo-lora")(with_lora(DiZOFO, lr=1e-4, eps=1e-2))
