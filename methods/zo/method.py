"""What every zeroth-order method shares: the engine, the step as record -> update (and its replay through the
same update), the checkpoint, the decay and the scoring of weight variants.

A ZO method's step scores the batch at a few weight variants (`score`), writes what it measured into a record
(a seed and a few scalars), then moves the weights by `descend(step, record)` alone: `replay` calls the same
function on the logged record, so a run rebuilt from its seed log does the same float operations on the same
numbers. A subclass declares its settings (`Hparams`), its record's keys, its forwards and its update; the
rest is here.

Checkpoints (best-on-dev weights): a method whose updates can be walked back (`walks_back`) logs the inverse of
each change (`log`) and a checkpoint is the log's length; restoring runs the inverses, kilobytes instead of a
weight copy, exact up to float32 rounding. In half precision that rounding is not small (a walk back over
thousands of steps leaves a share of the weights off by an ulp of fp16 or bf16), and some updates have no
inverse (an optimizer's moments, HiZOO's released curvature): those take a host copy of the weights, taken
when dev improves (`checkpoint_kind`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, ClassVar, Iterable, Sequence

import torch
from torch import nn

from benchmark.core import names
from benchmark.core.settings import one_of, param, positive, non_negative
from methods.base import Declared, Fresh, LossFn, Schedule, StepResult, copy_back, decays, host_copy, trainable
from methods.zo.engine import ZOEngine
from methods.zo.generators import GENERATORS, mix

HALF = (torch.float16, torch.bfloat16)

# make(i, rows, dtype, which): the copies `which` (indices among a score's variants) of rows `rows` of parameter
# i, best in `dtype` (the engine's `Make`, for some of the copies): the stacked forward asks for all of them at
# once, the sequential one for one at a time
Variants = Callable[[int, slice, "torch.dtype | None", Sequence[int]], list[torch.Tensor]]


@dataclass
class ZOHparams:
    """What every ZO method here takes: its step size, its decay and z's generator."""

    lr: float = param(1e-6, "learning rate", positive, "> 0")
    weight_decay: float = param(0.0, "decoupled weight decay (not on biases or norm weights)", non_negative, ">= 0")
    generator: str = param("auto", "z's generator: philox (counter-based, the same z on CPU and GPU) | torch-normal "
                           "(torch's normal_, version-1 seed logs) | auto (philox where its kernel runs)",
                           *one_of("auto", *GENERATORS))


@dataclass
class TwoPointHparams(ZOHparams):
    """A two-point (SPSA) estimate's probe scale and forward form."""

    eps: float = param(1e-3, "perturbation scale epsilon", positive, "> 0")
    dual_forward: bool = param(True, "both probes in one pass over the model on the batch stacked twice, z drawn once "
                                     "for the pair (false: two forwards, z drawn for each; on a GPU the run falls back "
                                     "to it when the stacked batch does not fit)")


class ZOMethod(Declared, first_order=False, trains=True, projects=False, replays=True):
    """The base of every ZO method (not itself registered). Trains every trainable parameter, embeddings
    included (as the original MeZO does)."""

    Hparams: ClassVar[type] = ZOHparams
    record_keys: ClassVar[tuple[str, ...]] = ("seed", "lr")  # what every step's record holds (the seed log checks it)
    walks_back: ClassVar[bool] = True  # its updates have inverses (`log`): the checkpoint is an undo log
    toy: ClassVar[dict[str, str]] = {}  # settings under which the tests' toy runs visibly learn (tests/helpers.py)

    def __init__(self, hp: Any, model: nn.Module, schedule: Schedule, seed: int) -> None:
        self.hp = hp
        self.schedule = schedule
        self.seed = seed
        self.engine = ZOEngine(model, trainable(model), decays(model), keep_directions=self.keeps_directions(),
                               generator=hp.generator)
        self.undo: list[Callable[[], None]] = []  # one closure per change to the weights: the rollback log
        self.checkpoint_kind = "undo" if self.rolls_back() else "host"

    # -- what a subclass declares --------------------------------------------------------------------

    def keeps_directions(self) -> bool:
        """Whether the probes' z is held for the update (MeZO's `keep_z`)."""
        return False

    def rolls_back(self) -> bool:
        """Whether a checkpoint is the undo log: updates with inverses (`walks_back`), on weights whose rounding
        a walk back does not compound (not fp16 or bf16)."""
        return self.walks_back and self.engine.params[0].dtype not in HALF

    def estimate(self, step: int, seed: int, loss_fn: LossFn, fresh: Fresh | None) -> tuple[dict, float, dict]:
        """The step's forwards: (its record, the train loss to log, its metrics). No weight moves here."""
        raise NotImplementedError

    def descend(self, step: int, record: dict[str, Any]) -> None:
        """The step's update from its record alone: what the run and its replay both call."""
        raise NotImplementedError

    def forwards(self) -> int:
        raise NotImplementedError

    # -- the step ------------------------------------------------------------------------------------

    def step(self, step: int, loss_fn: LossFn, fresh: Fresh | None = None) -> StepResult:
        record, loss, metrics = self.estimate(step, mix(self.seed, step), loss_fn, fresh)
        self.descend(step, record)
        return StepResult(loss=loss, forward_passes=self.passes(step), metrics=metrics, record=record)

    def passes(self, step: int) -> int:
        """Forward passes step `step` takes (the same every step unless the method has a `cycle`)."""
        return self.forwards()

    def replay(self, step: int, record: dict[str, Any]) -> None:
        self.descend(step, record)

    def score(self, loss_fn: LossFn, copies: int, make: Variants, stacked: bool,
              indices: Iterable[int] | None = None) -> list[float]:
        """The batch's loss at `copies` weight variants (`make`; parameters outside `indices` as they are):
        one forward on the batch stacked `copies` times where `stacked` and it fits the device, else one
        forward a variant (the first measured: what `fits` decides by on CUDA)."""
        engine = self.engine
        with torch.no_grad():
            if stacked and engine.fits(copies):
                with engine.stacked(copies, lambda i, rows, dtype: make(i, rows, dtype, range(copies)), indices):
                    return loss_fn.copies(copies).tolist()
            out = []
            for k in range(copies):
                with engine.measured() if k == 0 else contextlib.nullcontext(), \
                        engine.stacked(1, lambda i, rows, dtype, k=k: make(i, rows, dtype, (k,)), indices):
                    out.append(loss_fn.copies(1).item())
            return out

    def along_z(self, seed: int, eps: float, scales: list[torch.Tensor] | None = None,
                center: bool = False) -> Variants:
        """The variants [theta,] theta + eps z s, theta - eps z s (z times `scales[i]`: HiZOO's factor), both
        probes of a parameter from one pass over theta (`ZOEngine.pair`)."""
        engine = self.engine

        def make(i: int, rows: slice, dtype: torch.dtype | None, which: Sequence[int]) -> list[torch.Tensor]:
            wanted = [k - center for k in which]
            pair = engine.pair(seed, eps, scales, i, rows, dtype) if any(k >= 0 for k in wanted) else []
            for k, t in enumerate(pair):
                if k not in wanted:
                    engine.give_back(t)
            return [engine.params[i][rows] if k < 0 else pair[k] for k in wanted]

        return make

    # -- the update ----------------------------------------------------------------------------------

    def keep(self, lr: float) -> list[float]:
        """Per parameter, what theta keeps under the decoupled decay at this rate (1 off the decay group)."""
        wd = self.hp.weight_decay
        return [1.0 - lr * wd if wd and d else 1.0 for d in self.engine.decay]

    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """theta <- (1 - decay) theta - coeff z(seed), logged for rollback; `gains` scales some
        parameters' steps (the engine's per-parameter multipliers)."""
        self.engine.update(seed, coeff, decay, gains)
        self.log(partial(self.engine.revert, seed, coeff, decay, gains))

    def log(self, inverse: Callable[[], None]) -> None:
        """Log the inverse of a change just made (kept only where the checkpoint is the undo log)."""
        if self.checkpoint_kind == "undo":
            self.undo.append(inverse)

    def share(self, values: int) -> float:
        """`values` (a count) in copies of the trained weights."""
        return values / sum(p.numel() for p in self.engine.params)

    def state_copies(self) -> float:
        return 1.0 if self.engine.directions.keep else 0.0  # keep_z: the probes' z, held for the update

    # -- checkpoints and state -----------------------------------------------------------------------

    def checkpoint(self) -> Any:
        return len(self.undo) if self.checkpoint_kind == "undo" else host_copy(self.engine.params)

    def restore(self, checkpoint: Any) -> None:
        """Walk the undo log back to `checkpoint`, or copy the host copy back."""
        if self.checkpoint_kind == "host":
            copy_back(self.engine.params, checkpoint)
            return
        while len(self.undo) > checkpoint:
            self.undo.pop()()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def diagnostics(self) -> dict[str, float]:
        """On CUDA's path, whether the probes ran stacked (`ZOEngine.fits`, decided once a run): in the run's
        record, not a guess from its speed."""
        decided = self.engine.decided
        return {names.ZO_STACKED: float(all(decided.values()))} if decided else {}
