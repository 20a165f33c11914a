"""DiZO (divergence-driven ZO): MeZO steps plus, every `projection_interval` steps, a learned
per-layer rescaling of the distance travelled from the pre-trained weights.

For each projected weight (q and v projections by default), with delta = theta - theta0 and
ts = ||delta||, DiZO searches gamma and sets theta = theta0 + gamma / (ts + 1e-8) * delta
(Algorithm 1; the 1e-8 guard is the released code's). The default search is the released code's,
Skilteee/DiZO `large_models/trainer.py`, `DiZO.perturb_gamma` + `DiZO.zo_forward`, called 10 times a
round by `dizo_trainer.dizo_zo_iters` on fresh training batches, per projected tensor:

    gamma <- ts                                       (first iteration of a round: re-init)
    z ~ N(0, 1), clipped to +-(tau / eps_p) * ts
    loss+ at gamma + eps_p * z, loss- at gamma - eps_p * z      (absolute: gamma's own units)
    g = (loss+ - loss-) / (2 eps_p)
    gamma <- clip(gamma - eta_p * ts * g * z, (1 - tau) * ts, (1 + tau) * ts)

`projection_rule` names the search (the other two are switches, not the default):
- `released` (default): the rule above, line for line in meaning.
- `relative`: this harness's earlier rule, in ratio units r = gamma / ts: probes r +- eps_p * u with u
  clipped so both probes stay inside [1 - tau, 1 + tau], step eta_p * g * u. It equals the released
  rule only where ts is about 1; the released probe is eps_p * z / ts in ratio units.
- `appendix`: the paper's Appendix F pseudo-code: z unclipped, probes gamma +- eps_p * z, step
  eta_p * g * z (not scaled by ts), gamma clipped as above.
Departures from the released code, each with its reason:
- theta is never modified during the search: forwards see theta0 + r * delta through the ZO engine's
  substitution, where the released code writes the projection into the weights and divides it back
  out (rounding the weights every probe).
- ts and gamma are float64 scalars computed from float32 differences; the released code keeps them
  in the model's dtype (fp16 on OPT), where a ratio near 1 has 3 significant digits.
- trains embeddings like MeZO does (the released copy of MeZO skips `embed_tokens`); the paper
  projects Q and V, the released code K and V: default q,v (`projected_layers=k,v` is the released
  choice); the round's z stream is seeded from (run seed, step), not the global RNG.
- logs, per round, the loss before and after it on the round's last batch (2 more forwards).
Ablations (paper Tables 8, 9, C.2): `reinit=false` (the released code always re-initialises; without
it gamma carries over from the last round, clipped into this round's range), `clip_range=none`,
`projection_base=previous` (theta_{t-1}: the weights at the previous projection),
`projection_target=lr` (the learned ratios scale the next interval's ZO steps of those layers instead of
moving the weights). theta0 is kept only for the projected weights (`theta0`): on a GPU on the device where it fits
(`auto`: its size within FIT_MARGIN of the free memory when the run starts, decided once and reported as
`dizo/theta0_on_device`), else in pinned host memory, which the round reads for every probe.
`dizo-fo` learns the search with Adam through autograd (the paper's DiZO-dagger rows): `methods/dizo_fo.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import one_of, param, positive
from methods.base import Fresh, LossFn, Schedule, StepResult
from methods.layers import parse_roles, role_weights, valid_roles
from methods.lora import with_lora
from methods.mezo import MeZO, MeZOHparams
from methods.registry import register_method
from methods.zo import mix, path
from methods.zo.engine import FIT_MARGIN

GUARD = 1e-8  # the released code's ratio = gamma / (||delta|| + 1e-8)


def _clip_ok(x: float | None) -> bool:
    return x is None or 0 < x < 1


@dataclass
class ProjectionHparams(MeZOHparams):
    """What DiZO and DiZO-FO share: when and what they project, and the paper's ablations of it. The search
    itself (its rule and that rule's own parameters) is each method's: `DiZOHparams`, `DiZOFOHparams`."""

    # settings older seed logs carry that no longer exist, each only where a copy lived (replay drops them)
    retired: ClassVar[tuple[str, ...]] = ("theta0_on_device",)

    projection_interval: int = param(50, "steps between projections (kappa)", positive, ">= 1")
    projection_iters: int = param(10, "search iterations per projection, each on a fresh batch", positive, ">= 1")
    clip_range: float | None = param(0.2, "tau: gamma clipped to [1-tau, 1+tau] * ||delta||; none = no clipping", _clip_ok, "in (0, 1) or none")
    reinit: bool = param(True, "re-initialise gamma to ||delta|| before each search")
    projection_base: str = param("initial", "initial (theta0) | previous (weights at the last projection)", *one_of("initial", "previous"))
    projection_target: str = param("weights", "weights | lr (ratios scale the next interval's steps)", *one_of("weights", "lr"))
    projected_layers: str = param("q,v", "roles to project", valid_roles, "a comma list of q,k,v,o,dense")
    theta0: str = param("auto", "where theta0 lives on a GPU: auto (the device where it fits, else pinned host "
                        "memory) | device | host", *one_of("auto", "device", "host"))


@dataclass
class DiZOHparams(ProjectionHparams):
    projection_rule: str = param("released", "gamma search: released (Skilteee/DiZO trainer.py) | relative "
                                 "(ratio units) | appendix (the paper's Appendix F)",
                                 *one_of("released", "relative", "appendix"))
    projection_eps: float = param(0.1, "eps_p: perturbation of gamma (relative rule: of the ratio)", positive, "> 0")
    projection_step_size: float = param(2.0, "eta_p: step size of the gamma search", positive, "> 0")


@dataclass(frozen=True)
class GammaRule:
    """A ZO search rule for gamma: its probe and step, with its own parameters (eps_p, eta_p) and the clip
    range tau it must respect. `probe` gives, for one N(0, 1) draw u per layer, the perturbation of gamma
    (probes at gamma +- it) and the direction of the step gamma - eta_p * g * direction."""

    eps: float
    step_size: float
    tau: float | None

    def probe(self, gamma: torch.Tensor, ts: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Released(GammaRule):
    """Skilteee/DiZO `perturb_gamma` + `zo_forward`: z clipped to +-(tau / eps_p) ts, probes gamma +- eps_p z
    (gamma's own units), step eta_p ts g z."""

    def probe(self, gamma: torch.Tensor, ts: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = u
        if self.tau is not None:
            bound = self.tau / self.eps * ts
            z = torch.minimum(torch.maximum(u, -bound), bound)
        return self.eps * z, ts * z


class Relative(GammaRule):
    """This harness's earlier rule, in ratio units: probes r +- eps_p u with u clipped so both probes stay in
    [1 - tau, 1 + tau], step eta_p g u (in gamma's units: times ts)."""

    def probe(self, gamma: torch.Tensor, ts: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pert = self.eps * ts * u
        if self.tau is not None:  # keep both probes inside the clip range
            room = torch.minimum(gamma - (1 - self.tau) * ts, (1 + self.tau) * ts - gamma)
            pert = torch.minimum(torch.maximum(pert, -room), room)
        return pert, pert / self.eps


class Appendix(GammaRule):
    """The paper's Appendix F: z unclipped, probes gamma +- eps_p z, step eta_p g z (not scaled by ts)."""

    def probe(self, gamma: torch.Tensor, ts: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.eps * u, u


GAMMA_RULES = {"released": Released, "relative": Relative, "appendix": Appendix}


@register_method("dizo")
class DiZO(MeZO, projects=True):
    """MeZO steps plus a periodic, learned per-layer rescaling of theta - theta0 (Algorithm 1)."""

    Hparams = DiZOHparams
    toy = {"lr": "2e-3", "projection_interval": "20"}

    def __init__(self, hp: DiZOHparams, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.rule = self.search_rule(hp)
        index = {id(p): i for i, p in enumerate(self.engine.params)}
        self.layers = [(name, index[id(p)]) for name, p in role_weights(model, parse_roles(hp.projected_layers))]
        self.theta0_on_device = self._place()
        self.base = [self._store(self.engine.params[i]) for _, i in self.layers]
        self.slot = {i: k for k, (_, i) in enumerate(self.layers)}  # parameter index -> projected layer
        self.gamma: torch.Tensor | None = None  # gamma per projected layer after the last round (float64)
        self.gains: dict[int, float] = {}  # projection_target=lr: the last round's ratios scale the next steps
        self.last_ratios: torch.Tensor | None = None

    def state_copies(self) -> float:
        return super().state_copies() + self.share(sum(t.numel() for t in self.base))  # theta0 of the projected weights (host, on a GPU)

    @staticmethod
    def search_rule(hp: DiZOHparams) -> GammaRule:
        return GAMMA_RULES[hp.projection_rule](hp.projection_eps, hp.projection_step_size, hp.clip_range)

    def _place(self) -> bool:
        """Whether theta0 lives on the weights' device (decided once, when the run starts)."""
        device = self.engine.device
        if not path.cuda(device):
            return True  # a CPU: one memory
        if self.hp.theta0 != "auto":
            return self.hp.theta0 == "device"
        size = sum(self.engine.params[i].numel() * self.engine.params[i].element_size() for _, i in self.layers)
        return size <= FIT_MARGIN * path.free_bytes(device)

    def _store(self, p: torch.Tensor) -> torch.Tensor:
        if self.theta0_on_device:
            return p.detach().clone()
        host = p.detach().to("cpu", copy=True)
        return host.pin_memory() if p.is_cuda else host  # pinned: the round's copies to the device overlap

    def diagnostics(self) -> dict[str, float]:
        out = super().diagnostics()
        if path.cuda(self.engine.device):
            out[names.DIZO_THETA0_ON_DEVICE] = float(self.theta0_on_device)
        return out

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        out = super().step(step, loss_fn)
        if (step + 1) % self.hp.projection_interval == 0:
            if fresh is None:
                raise ValueError("DiZO's projection needs fresh training batches")
            gamma, ratios, diagnostics = self.search_round(step, fresh)
            self.settle(gamma, ratios)
            out.forward_passes += self.projection_passes()
            out.metrics.update(diagnostics)
            out.record["projection"] = {"gamma": gamma.tolist(), "ratios": ratios.tolist()}
        return out

    def replay(self, step: int, record: dict[str, Any]) -> None:
        """The MeZO step, then the round's outcome (float64 gamma and ratios, exact in the log) as the run
        settled it: the search's forwards are not redone."""
        self.descend(step, record)
        if "projection" in record:
            round_ = record["projection"]
            self.settle(torch.tensor(round_["gamma"], dtype=torch.float64),
                        torch.tensor(round_["ratios"], dtype=torch.float64))

    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        super().update(seed, coeff, decay, gains or dict(self.gains) or None)

    def _lerp(self, k: int, ratios: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """theta0 + r * (theta - theta0) for (rows `rows` of) projected layer k, built on the parameter's device."""
        p = self.engine.params[self.layers[k][1]][rows]
        base = self.base[k][rows].to(p.device, non_blocking=True)
        return torch.lerp(base, p.detach(), ratios[k].to(p.dtype))

    def _projected(self, ratios: torch.Tensor):
        return self.engine.substituted(lambda i, rows: self._lerp(self.slot[i], ratios, rows), indices=self.slot)

    def _losses(self, loss_fn: LossFn, *ratios: torch.Tensor | None) -> list[float]:
        """The batch's loss with the projected layers at each ratio vector (None: as they are), in one
        stacked forward (`dual_forward`) or one forward each."""
        def make(i: int, rows: slice, dtype: torch.dtype | None, which) -> list[torch.Tensor]:
            return [self.engine.params[i][rows] if ratios[k] is None else self._lerp(self.slot[i], ratios[k], rows)
                    for k in which]

        return self.score(loss_fn, len(ratios), make, self.hp.dual_forward, indices=self.slot)

    def norms(self) -> torch.Tensor:
        """ts = ||theta - theta0|| per projected layer (float64 on CPU: L scalars, read back in one copy)."""
        out = []
        for k, (_, i) in enumerate(self.layers):
            p = self.engine.params[i]
            wide = torch.promote_types(p.dtype, torch.float32)  # fp16/bf16 -> fp32; fp64 stays
            out.append(torch.linalg.vector_norm(p.detach().to(wide) - self.base[k].to(p.device, wide)).double())
        return torch.stack(out).cpu()

    @staticmethod
    def ratios(gamma: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """gamma / (ts + 1e-8), the released code's ratio; 1 where theta never moved (nothing to rescale)."""
        return torch.where(ts > 0, gamma / (ts + GUARD), torch.ones_like(ts))

    def clip(self, gamma: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """gamma clipped to [(1 - tau) ts, (1 + tau) ts]; unchanged with clip_range=none."""
        tau = self.hp.clip_range
        return gamma if tau is None else torch.minimum(torch.maximum(gamma, (1 - tau) * ts), (1 + tau) * ts)

    @torch.no_grad()
    def search(self, step: int, fresh: Fresh, gamma: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
        """`projection_iters` ZO iterations of gamma, each on a fresh batch; returns gamma and the last batch."""
        rule = self.rule
        gen = torch.Generator().manual_seed(mix(self.seed, step, 0xD120))
        for _ in range(self.hp.projection_iters):
            loss_fn = fresh()
            u = torch.randn(len(gamma), generator=gen, dtype=torch.float64)
            pert, direction = rule.probe(gamma, ts, u)
            loss_plus, loss_minus = self._losses(loss_fn, self.ratios(gamma + pert, ts), self.ratios(gamma - pert, ts))
            grad = (loss_plus - loss_minus) / (2 * rule.eps)
            gamma = self.clip(gamma - rule.step_size * grad * direction, ts)
        return gamma, loss_fn

    def project(self, step: int, fresh: Fresh) -> tuple[int, dict[str, float]]:
        """One round: search gamma, move the weights (or the step sizes); returns forwards and diagnostics."""
        gamma, ratios, diagnostics = self.search_round(step, fresh)
        self.settle(gamma, ratios)
        return self.projection_passes(), diagnostics

    def search_round(self, step: int, fresh: Fresh) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """A round's search, leaving the weights as they are: (gamma, ratios, diagnostics)."""
        ts = self.norms()
        gamma = ts.clone() if self.hp.reinit or self.gamma is None else self.clip(self.gamma, ts)
        gamma, last = self.search(step, fresh, gamma, ts)
        ratios = self.ratios(gamma, ts)
        with torch.no_grad():
            loss_before, loss_after = self._losses(last, None, ratios)
        return gamma, ratios, {
            **self.round_diagnostics(gamma, ts), names.DIZO_LOSS_BEFORE: loss_before, names.DIZO_LOSS_AFTER: loss_after}

    def settle(self, gamma: torch.Tensor, ratios: torch.Tensor) -> None:
        """A round's outcome: move the weights (or the step sizes) by the ratios; gamma is kept for the next
        round (`reinit=false`)."""
        self.gamma, self.last_ratios = gamma, ratios
        if self.hp.projection_target == "weights":
            self._apply(ratios)
        else:
            old = dict(self.gains)
            self.gains.update({i: float(r) for (_, i), r in zip(self.layers, ratios)})
            self.log(partial(self._set_gains, old))
        if self.hp.projection_base == "previous":
            old_base = [b.clone() for b in self.base]
            for k, (_, i) in enumerate(self.layers):
                self.base[k].copy_(self.engine.params[i].detach())
            self.log(partial(self._set_base, old_base))

    def round_diagnostics(self, gamma: torch.Tensor, ts: torch.Tensor) -> dict[str, float]:
        """What shows the search searching: the ratios' spread and the share stuck on a clip bound."""
        live = ts > 0
        ratios, tau = self.ratios(gamma, ts)[live], self.hp.clip_range
        if not len(ratios):
            return {}
        g, t = gamma[live], ts[live]
        at_bound = torch.zeros_like(g, dtype=torch.bool) if tau is None else (g <= (1 - tau) * t) | (g >= (1 + tau) * t)
        return {names.DIZO_RATIO_MEAN: ratios.mean().item(), names.DIZO_RATIO_MIN: ratios.min().item(),
                names.DIZO_RATIO_MAX: ratios.max().item(), names.DIZO_RATIO_AT_BOUND: at_bound.double().mean().item(),
                names.DIZO_TS_MEAN: t.mean().item()}

    def projection_passes(self) -> int:
        """Forward passes one projection adds (backward not counted): the search and the before/after losses."""
        return 2 * self.hp.projection_iters + 2

    @torch.no_grad()
    def _apply(self, ratios: torch.Tensor) -> None:
        for k, (_, i) in enumerate(self.layers):
            self.engine.params[i].copy_(self._lerp(k, ratios))
        self.log(partial(self._unapply, ratios))

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


register_method("dizo-lora")(with_lora(DiZO, {"lr": "1e-1"}, lr=1e-4, eps=1e-2))
