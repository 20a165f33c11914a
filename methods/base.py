"""The contract between the runner and a training method.

A method owns the parameters' evolution and nothing else: the runner hands it a closure that
computes the batch loss, and it returns the loss it saw. One runner loop serves first-order and
zeroth-order methods alike. Methods never see MLflow, Optuna, or the task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import nn


class LossFn(Protocol):
    """A training batch's loss, as the runner hands it to a method."""

    def __call__(self) -> torch.Tensor:
        """The batch's loss (differentiable)."""

    def copies(self, n: int) -> torch.Tensor:
        """[n] the losses of n copies of the batch stacked into one forward: inside the ZO engine's
        `stacked`/`probes`, copy k is scored with the k-th weight variant."""


Fresh = Callable[[], LossFn]  # draws a fresh training batch and returns its loss
Schedule = Callable[[int], float]  # step -> multiplier of the base learning rate


@dataclass
class StepResult:
    loss: float
    forward_passes: int
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # a method that `replays`: what redoes this step's update


class Method(Protocol):
    """What every registered method declares and does. The harness asks these attributes instead of
    guessing from a method's name (`tests/test_methods.py` holds every registered method to them)."""

    Hparams: ClassVar[type]  # a dataclass of `param` fields: the method's hyperparameters, validated before work
    first_order: ClassVar[bool]  # trains through backprop: dropout on, and a preset's first-order step budget
    trains: ClassVar[bool]  # False: no step runs (zero-shot); the run scores the weights it was given
    projects: ClassVar[bool]  # a periodic projection besides the steps (DiZO): implements `Projecting`
    replays: ClassVar[bool]  # a step's update is a function of its `record` (a seed and a few scalars: ZO): `replay`
    toy: ClassVar[dict[str, str]]  # (training methods) settings under which the tests' toy runs visibly learn

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        """Take the model to train in place, the learning-rate schedule, the run's seed."""

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        """One optimisation step on `loss_fn`'s batch; `fresh` supplies extra batches (DiZO's projection)."""

    def forwards(self) -> float:
        """Forward passes one step takes, a projection's aside (each copy of a stacked batch counts one; a
        forward-mode pass counts one): what `StepResult.forward_passes` reports and `benchmark perf` divides by;
        for a method whose steps differ (`cycle` > 1), their mean over a cycle."""

    def cycle(self) -> int:
        """Steps after which the per-step work repeats (1 but for MeZO-SVRG: its anchor period q)."""

    def state_copies(self) -> float:
        """What the method holds across steps besides the trained weights, in copies of them (Adam's moments:
        2; HiZOO's curvature: 1; LOZO's V factors: a few thousandths): the extra memory it declares, which
        `benchmark perf` prints beside the peak it measures."""

    def checkpoint(self) -> Any:
        """Something cheap from which `restore` can bring back the current weights."""

    def restore(self, checkpoint: Any) -> None:
        """Bring the weights back to what they were when `checkpoint` was taken."""

    def diagnostics(self) -> dict[str, float]:
        """The method's internal state worth a look at each evaluation (HiZOO's scale spread); often empty."""

    def replay(self, step: int, record: dict[str, Any]) -> None:
        """(`replays` only) Redo step `step`'s update from its `StepResult.record`, without a forward: the
        same operations on the same numbers, so the weights come out bit for bit as the run's."""

    def state_dict(self) -> dict[str, Any]:
        """(training methods) What a resumed run needs besides the replayed log: first-order methods their
        trained weights and optimizer state; ZO methods only state no record rebuilds (DiZO-FO's Adam)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back a `state_dict`."""


FLAGS = ("first_order", "trains", "projects", "replays")  # `Method`'s contract flags


class Declared:
    """The base of every registered method: its contract flags (`Method`) as class keywords,
    `class MeZO(Declared, first_order=False, trains=True, projects=False, replays=True)`. A subclass
    inherits its parent's flags and names only those it changes (`class DiZO(MeZO, projects=True)`); a
    class that leaves one undeclared, or names one that is not a flag, is refused where it is defined."""

    toy: ClassVar[dict[str, str]] = {}

    def cycle(self) -> int:
        return 1

    def __init_subclass__(cls, **flags: bool) -> None:
        unknown = sorted(set(flags) - set(FLAGS))
        if unknown:
            raise TypeError(f"{cls.__name__}: {', '.join(unknown)} is not a contract flag ({', '.join(FLAGS)})")
        super().__init_subclass__()
        for name, value in flags.items():
            setattr(cls, name, value)
        missing = [name for name in FLAGS if not isinstance(getattr(cls, name, None), bool)]
        if missing:
            raise TypeError(f"{cls.__name__} declares no {', '.join(missing)} (class keywords of `Declared`)")


class Projecting(Method, Protocol):
    """A method that `projects`: every `hp.projection_interval` steps its `step` also runs one projection."""

    def project(self, step: int, fresh: Fresh) -> tuple[int, dict[str, float]]:
        """One projection round on fresh batches; returns its forward passes and diagnostics."""

    def projection_passes(self) -> int:
        """Forward passes one projection adds."""


def host_copy(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """A checkpoint as a copy of the weights in host memory (where walking an update log back is not possible)."""
    return [p.detach().to("cpu", copy=True) for p in params]


@torch.no_grad()
def copy_back(params: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    """Restore a `host_copy`."""
    for p, s in zip(params, saved):
        p.copy_(s)


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Unique trainable parameters (tied weights appear once), in registration order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def decays(model: nn.Module) -> set[str]:
    """Names of parameters that take weight decay: not biases, not normalisation weights."""
    norm_params = {
        f"{mod_name}.{p_name}" if mod_name else p_name
        for mod_name, module in model.named_modules()
        if "norm" in type(module).__name__.lower()
        for p_name, _ in module.named_parameters(recurse=False)
    }
    return {n for n, _ in model.named_parameters() if not n.endswith("bias") and n not in norm_params}


def lr_schedule(kind: str, total_steps: int) -> Schedule:
    if kind == "linear":
        return lambda step: 1.0 - step / total_steps
    return lambda step: 1.0
