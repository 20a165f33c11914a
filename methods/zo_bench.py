"""ZO-Bench's zeroth-order optimizers (Zhang et al., ICML 2024; ZO-Bench/ZO-LLM `zo-bench/trainer.py`).

Each takes MeZO's two-point estimate along one Gaussian z, g = (f(theta + eps z) - f(theta - eps z)) / (2 eps)
(`zo_step`: `perturbation_mode=two_side`, q = 1), and hands a first-order optimizer the gradient g z, one
parameter at a time (`param.grad = graddiff_times_z; self.optimizer.step()`):
- `zo-sgd-sign` (`trainer=zo_sign_opt`): the gradient sign(g) z.
- `zo-sgd-mmt` (`trainer=zo_sgd` with `momentum=0.9`, as its sweeps set it): torch SGD with momentum.
- `zo-sgd-cons` (`trainer=zo_conserv`, `zo_conserv_step`): also scores the batch at theta; steps with g z,
  scores there, steps with -2 g z (theta mirrored), scores there, and ends at the lowest of the three
  points by one more step (g z or 2 g z) or none. Five forwards a step.
- `zo-adam` (`trainer=zo_adam`): torch Adam (betas 0.9, 0.999, eps 1e-8).
ZO-Bench's plain `zo_sgd` (momentum 0) is our `mezo`: the same probes, then p - lr g z through torch SGD,
which is MeZO's update with no weight decay (tests/test_fidelity.py holds it).

Which optimizer steps: `_inner_training_loop` replaces the HF Trainer's optimizer by torch Adam for `zo_adam`
and by torch SGD(momentum) for `zo_sgd`; for any other trainer only when `--optimizer` is adam or sgd. run.py's
default is `adamw` and none of the 88 released sweeps of `zo_sign_opt` or `zo_conserv` sets another, so those
runs stepped transformers 4.28's default optimizer, `adamw_hf` (`transformers.optimization.AdamW`: betas
0.9/0.999, eps 1e-8 added to sqrt(v), the bias correction folded into the step size, then the decoupled
decay lr * wd on the decay group: not biases, not norms). That is their default here (`optimizer=adamw-hf`);
`optimizer=sgd` is the rule the methods' names and the paper describe, `optimizer=adam` torch's Adam. With
an Adam-type optimizer the conservative step's three optimizer calls do not retrace one line (each moves the
moments): ZO-Bench's code does exactly that, and so does ours. The learning rate is constant: the trainer
asserts `lr_scheduler_type=constant`, and the scheduler it built steps the optimizer it replaced.

Departures, each with its reason:
- z from our generator and seeds (philox by default; (run seed, step) rather than numpy's global RNG), as
  for MeZO: replayable, and the same on CPU and GPU.
- `weight_decay` (0, as the released SGD and Adam are built): set with sgd or adam it is torch's coupled
  decay (grad + wd theta) on every trained parameter, as torch would apply it to ZO-Bench's single group.
- The train loss logged is the batch's loss at theta before the step (`zo-sgd-cons`: its centre point;
  the others: the probes' mean, as for MeZO); the released code logs f(theta + eps z) or, conservative,
  the loss after its first step.
- The optimizer state (momentum, moments) is in the parameters' dtype, as torch keeps it; nothing but the
  seed log is needed to rebuild it: replaying redoes every step's optimizer call, so a checkpoint holds no
  state and a resume replays the log (the same cost as MeZO's replay, plus the moments' arithmetic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import one_of, param, positive
from methods.base import Fresh, LossFn, Schedule, StepResult
from methods.lora import with_lora
from methods.mezo import MeZO, MeZOHparams
from methods.registry import register_method
from methods.zo import ZOEngine, mix


def _beta(x: float) -> bool:
    return 0 <= x < 1


@dataclass
class MomentumHparams(MeZOHparams):
    momentum: float = param(0.9, "SGD momentum (torch's: buf = m buf + grad, theta -= lr buf)", _beta, "in [0, 1)")


@dataclass
class AdamHparams(MeZOHparams):
    beta1: float = param(0.9, "Adam's first-moment decay", _beta, "in [0, 1)")
    beta2: float = param(0.999, "Adam's second-moment decay", _beta, "in [0, 1)")
    adam_eps: float = param(1e-8, "Adam's epsilon", positive, "> 0")


@dataclass
class SwitchHparams(AdamHparams):
    optimizer: str = param("adamw-hf", "what steps on the ZO gradient: adamw-hf (what the released sweeps ran: "
                           "transformers 4.28's default) | sgd (the paper's rule) | adam (torch's)",
                           *one_of("adamw-hf", "sgd", "adam"))
    momentum: float = param(0.0, "SGD momentum (optimizer=sgd)", _beta, "in [0, 1)")


class SGD:
    """torch.optim.SGD's single-tensor step (no dampening, not Nesterov) on the gradient scale * z."""

    def __init__(self, params: list[torch.Tensor], momentum: float, weight_decay: float) -> None:
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buf = [torch.zeros_like(p) for p in params] if momentum else None
        self.started = False

    def held(self) -> list[torch.Tensor]:
        """The state it keeps across steps (the momentum buffer)."""
        return self.buf or []

    @torch.no_grad()
    def step(self, engine: ZOEngine, seed: int, scale: float, lr: float) -> None:
        first, self.started = not self.started, True

        def fn(i: int, rows: slice, z: torch.Tensor) -> None:
            p = engine.params[i][rows]
            grad = z.mul_(scale)
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.buf is not None:
                buf = self.buf[i][rows]
                if first:
                    buf.copy_(grad)
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-lr)

        engine.apply(seed, fn)


class Adam:
    """torch.optim.Adam's single-tensor step (not AMSGrad) on the gradient scale * z."""

    def __init__(self, params: list[torch.Tensor], betas: tuple[float, float], eps: float, weight_decay: float) -> None:
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def held(self) -> list[torch.Tensor]:
        """The state it keeps across steps (the two moments)."""
        return [*self.m, *self.v]

    @torch.no_grad()
    def step(self, engine: ZOEngine, seed: int, scale: float, lr: float) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        step_size = lr / (1 - beta1 ** float(self.t))
        bias_correction2_sqrt = (1 - beta2 ** float(self.t)) ** 0.5

        def fn(i: int, rows: slice, z: torch.Tensor) -> None:
            p, m, v = engine.params[i][rows], self.m[i][rows], self.v[i][rows]
            grad = z.mul_(scale)
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            p.addcdiv_(m, (v.sqrt() / bias_correction2_sqrt).add_(self.eps), value=-step_size)

        engine.apply(seed, fn)


class AdamWHF(Adam):
    """transformers 4.28 `optimization.AdamW` (`adamw_hf`, correct_bias) on the gradient scale * z, its
    decoupled decay on the decay group (the HF Trainer's: not biases, not norms)."""

    @torch.no_grad()
    def step(self, engine: ZOEngine, seed: int, scale: float, lr: float) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        step_size = lr * math.sqrt(1.0 - beta2 ** self.t) / (1.0 - beta1 ** self.t)

        def fn(i: int, rows: slice, z: torch.Tensor) -> None:
            p, m, v = engine.params[i][rows], self.m[i][rows], self.v[i][rows]
            grad = z.mul_(scale)
            m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-step_size)
            if self.weight_decay > 0.0 and engine.decay[i]:
                p.add_(p, alpha=-lr * self.weight_decay)

        engine.apply(seed, fn)


def make_optimizer(hp: Any, params: list[torch.Tensor], kind: str) -> SGD | Adam:
    if kind == "sgd":
        return SGD(params, hp.momentum, hp.weight_decay)
    cls = AdamWHF if kind == "adamw-hf" else Adam
    return cls(params, (hp.beta1, hp.beta2), hp.adam_eps, hp.weight_decay)


class ZOOptimizer(MeZO):
    """MeZO's estimate, stepped by a first-order optimizer (`optimizer_kind`). Its state cannot be walked
    back: a best-on-dev checkpoint is a host copy of the weights."""

    walks_back = False

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        super().__init__(hp, model, schedule, seed)
        self.opt = make_optimizer(hp, self.engine.params, self.optimizer_kind())

    def optimizer_kind(self) -> str:
        """What steps on the gradient: the subclass's optimizer, or its `optimizer` setting."""
        return "sgd"

    def state_copies(self) -> float:
        return super().state_copies() + self.share(sum(t.numel() for t in self.opt.held()))

    def gradient(self, grad: float) -> float:
        """The scalar the optimizer's gradient is z times."""
        return grad

    def descend(self, step: int, record: dict[str, Any]) -> None:
        self.opt.step(self.engine, record["seed"], self.gradient(record["grad"]), record["lr"])


@register_method("zo-sgd-sign")
class ZOSGDSign(ZOOptimizer):
    """ZO-Bench's ZO-SGD-Sign: the optimizer steps on sign(g) z (released default optimizer: adamw-hf)."""

    Hparams = SwitchHparams
    toy = {"lr": "2e-3"}

    def optimizer_kind(self) -> str:
        return self.hp.optimizer

    def gradient(self, grad: float) -> float:
        return math.copysign(1.0, grad) if grad else 0.0  # np.sign


@register_method("zo-sgd-mmt")
class ZOSGDMomentum(ZOOptimizer):
    """ZO-Bench's ZO-SGD-MMT: torch SGD with momentum (0.9) on g z."""

    Hparams = MomentumHparams
    toy = {"lr": "3e-4"}


@register_method("zo-adam")
class ZOAdam(ZOOptimizer):
    """ZO-Bench's ZO-Adam: torch Adam on g z."""

    Hparams = AdamHparams
    toy = {"lr": "1e-3"}

    def optimizer_kind(self) -> str:
        return "adam"


@register_method("zo-sgd-cons")
class ZOSGDConserve(ZOOptimizer):
    """ZO-Bench's ZO-SGD-Cons: of theta, a step along g z and its mirror, keeps the point with the lowest
    batch loss (five forwards a step; released default optimizer: adamw-hf)."""

    Hparams = SwitchHparams
    record_keys = (*MeZO.record_keys, "final")
    toy = {"lr": "5e-3"}

    def optimizer_kind(self) -> str:
        return self.hp.optimizer

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        seed = mix(self.seed, step)
        loss0, loss_plus, loss_minus = self.losses(seed, loss_fn, center=True)
        grad = (loss_plus - loss_minus) / (2 * self.hp.eps)
        record = {"seed": seed, "grad": grad, "lr": self.hp.lr * self.schedule(step), "final": None}
        self.conserve(record, loss0, lambda: loss_fn.copies(1).item())
        return StepResult(loss=loss0, forward_passes=self.forwards(), record=record,
                          metrics={names.PROJECTED_GRAD: grad})

    def forwards(self) -> int:
        return 5

    def descend(self, step: int, record: dict[str, Any]) -> None:
        self.conserve(record)

    @torch.no_grad()
    def conserve(self, record: dict[str, Any], loss0: float | None = None, score=None) -> None:
        """The step's optimizer calls: along g z, along -2 g z (theta mirrored), then to the best of the three
        points by `final` g z. The run scores the batch after the first two (`score`) and decides `final`;
        its replay reads `final` from the record: one function, the same calls."""
        seed, grad, lr = record["seed"], record["grad"], record["lr"]
        self.opt.step(self.engine, seed, grad, lr)
        loss1 = score() if score else None
        self.opt.step(self.engine, seed, -2.0 * grad, lr)
        if score:
            loss2 = score()
            if loss1 > loss0:
                record["final"] = 1.0 if loss0 < loss2 else 0.0
            else:
                record["final"] = 2.0 if loss1 < loss2 else 0.0
        if record["final"]:
            self.opt.step(self.engine, seed, record["final"] * grad, lr)


for _name, _cls in (("zo-sgd-sign", ZOSGDSign), ("zo-sgd-mmt", ZOSGDMomentum), ("zo-adam", ZOAdam),
                    ("zo-sgd-cons", ZOSGDConserve)):
    register_method(f"{_name}-lora")(with_lora(_cls, {"lr": "1e-2"}, lr=1e-4, eps=1e-2))
