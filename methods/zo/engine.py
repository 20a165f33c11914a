"""The zeroth-order engine: a ZO step's probes and update over a model's trained parameters.

MeZO's trick is kept: a direction z is never stored; it is regenerated from (step seed, parameter, element)
(`directions`). Unlike MeZO's released code, the perturbation is applied functionally: each module that owns
a trained parameter is handed theta + eps z in a scratch tensor while the parameter itself is never touched
(`substitution`); MeZO's in-place +eps, -2eps, +eps sequence leaves about half of all fp32 weights one ulp
off after every step (measured on SmolLM2-135M). theta changes only by the update (`update`).

The dual forward (`probes`, MeZO's default): both probes in one pass over the model on the batch stacked
twice; each owning module gets theta + eps z and theta - eps z from one pass over theta (`Directions.pair`),
so a step computes z twice (the pair and the update) where the sequential form (`perturbed`,
`dual_forward=false`) computes it three times; every other op runs once on the stacked batch. Every owning
module builds the same weights and runs the same kernels on the same shapes in both forms; the ops in
between run on the stacked batch, and a multithreaded CPU kernel may split a larger batch differently and
round it differently in the last bit (RoBERTa's bidirectional SDPA on a 2-core AMD EPYC, batch 8 against
the stack of 16, at 2 threads; equal at 1). So the forms agree bit for bit on one thread
(tests/test_zo_engine.py) and to rounding on more, which HiZOO's curvature, a second difference over eps^2,
amplifies into a different trajectory. On CUDA the stacked batch runs only where it fits (`fits`).
Where the time goes: README's "Speed and memory".
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

from methods.zo import path
from methods.zo import update as updates
from methods.zo.directions import Directions
from methods.zo.generators import AUTO
from methods.zo.substitution import Make, Substitution

FIT_MARGIN = 0.9  # share of free GPU memory the stacked batch may take


class ZOEngine:
    def __init__(self, model: nn.Module, params: list[tuple[str, nn.Parameter]], decay_names: set[str],
                 keep_directions: bool = False, generator: str = AUTO) -> None:
        self.model = model
        self.names = [n for n, _ in params]
        self.params = [p for _, p in params]
        self.decay = [n in decay_names for n in self.names]
        self.device = self.params[0].device
        self.directions = Directions(self.params, generator, keep=keep_directions)
        self.substitution = Substitution(model, self.params, self.names)
        self._forward_bytes: int | None = None  # CUDA: one forward's activation peak, once measured
        self.decided: dict[int, bool] = {}  # CUDA: copies -> whether they run as one stacked forward (`fits`)

    def direction(self, seed: int, i: int, rows: slice | None = None) -> torch.Tensor:
        """z of parameter i at this seed (a fresh tensor)."""
        return self.directions.draw(seed, i, rows)

    def parts(self, i: int) -> list[slice]:
        return self.substitution.parts(i)

    # -- forwards on substitute weights --------------------------------------------------------------

    def pair(self, seed: int, eps: float, scales: list[torch.Tensor] | None, i: int, rows: slice,
              dtype: torch.dtype | None = None) -> list:
        """[theta + eps z s, theta - eps z s] for rows `rows` of parameter i, in borrowed scratch: in `dtype`
        where the directions' kernel writes it (rounded as a cast would), else in the parameter's."""
        dtype = dtype if dtype is not None and self.directions.writes(i, dtype) else None
        plus, minus = self.substitution.borrow(i, rows, dtype), self.substitution.borrow(i, rows, dtype)
        self.directions.pair(seed, i, rows, eps, None if scales is None else scales[i][rows], plus, minus)
        return [plus, minus]

    def borrow(self, i: int, rows: slice) -> torch.Tensor:
        """Scratch shaped like rows `rows` of parameter i, for a `make` to fill (given back after its forward)."""
        return self.substitution.borrow(i, rows)

    def give_back(self, t: torch.Tensor) -> None:
        self.substitution.give_back(t)

    def probes(self, seed: int, eps: float, scales: list[torch.Tensor] | None = None,
               center: bool = False) -> ContextManager[None]:
        """The dual forward: forwards inside take the batch stacked 2 times (3 with `center`); copy by copy,
        every module that owns a trained parameter sees [theta,] theta + eps z, theta - eps z (z times
        `scales[i]` elementwise: HiZOO's factor)."""
        def make(i: int, rows: slice, dtype: torch.dtype | None) -> list[torch.Tensor]:
            return [self.params[i][rows]] * center + self.pair(seed, eps, scales, i, rows, dtype)

        return self.substitution.stacked(2 + center, make)

    def perturbed(self, seed: int, eps: float, sign: int = 1,
                  scales: list[torch.Tensor] | None = None) -> ContextManager[None]:
        """Forwards inside see theta + eps z(seed) (sign 1) or theta - eps z(seed) (sign -1): the same weights
        as the dual forward's copies."""
        def make(i: int, rows: slice, dtype: torch.dtype | None) -> list[torch.Tensor]:
            plus, minus = self.pair(seed, eps, scales, i, rows, dtype)
            used, spare = (plus, minus) if sign > 0 else (minus, plus)
            self.substitution.give_back(spare)
            return [used]

        return self.substitution.stacked(1, make)

    def substituted(self, make: Callable[[int, slice], torch.Tensor],
                    indices: Iterable[int] | None = None) -> ContextManager[None]:
        """Forwards inside see `make(i, rows)` in place of rows `rows` of parameter i (all, or `indices`)."""
        return self.substitution.stacked(1, lambda i, rows, dtype: [make(i, rows)], indices)

    def stacked(self, copies: int, make: Make, indices: Iterable[int] | None = None) -> ContextManager[None]:
        """Forwards inside run on `copies` stacked copies of the batch, copy k with make(i, rows, dtype)[k]."""
        return self.substitution.stacked(copies, make, indices)

    # -- the update ----------------------------------------------------------------------------------

    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """theta <- (1 - decay) theta - coeff z(seed) (`methods/zo/update.py`)."""
        updates.update(self.directions, self.decay, seed, coeff, decay, gains)

    def revert(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        updates.revert(self.directions, self.decay, seed, coeff, decay, gains)

    def apply(self, seed: int, fn: Callable[[int, slice, torch.Tensor], None],
              fused: Callable[[int, int, int, int], None] | None = None) -> None:
        """An update that needs z itself (HiZOO's): `fused(i, lo, hi, key)` where the kernel computes z, else
        fn(i, rows, z of those rows) (`Directions.walk`)."""
        self.directions.walk(seed, fn, fused)

    # -- memory fit (CUDA) ---------------------------------------------------------------------------

    def fits(self, copies: int) -> bool:
        """Whether `copies` stacked batches run as one forward. Always on a CPU. On CUDA's path, decided once
        a run for each number of copies (`decided`, which the method reports), the first time it is asked
        after one forward's activation peak is known (`measured`): copies times it within FIT_MARGIN of the
        free memory, no memory query after that; a run that does not fit stays sequential, with the same
        numbers up to the rounding of kernels that depend on the batch size (the module docstring)."""
        if not path.cuda(self.device):
            return True
        if self._forward_bytes is None:
            return False
        if copies not in self.decided:
            free = path.free_bytes(self.device)
            self.decided[copies] = copies * self._forward_bytes <= FIT_MARGIN * free
            if not self.decided[copies]:
                warnings.warn(f"ZO: {copies} stacked batches need about {copies * self._forward_bytes / 2**30:.1f} "
                              f"GiB, {free / 2**30:.1f} GiB free: probes run one forward each")
        return self.decided[copies]

    @contextlib.contextmanager
    def measured(self) -> Iterator[None]:
        """On CUDA's path, records the block's activation peak (one forward) the first time it runs."""
        if not path.cuda(self.device) or self._forward_bytes is not None:
            yield
            return
        peaks: list[int] = []
        with path.peak(self.device, peaks):
            yield
        self._forward_bytes = peaks[0]
