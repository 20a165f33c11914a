"""The zeroth-order engine: seeded Gaussian directions, functional perturbation, in-place update.

MeZO's trick is kept: a direction z is never stored; it is regenerated from (step seed, parameter
index), so any parameter's z can be redrawn in any order. Unlike MeZO's released code, the
perturbation is applied functionally: each module that owns a trained parameter is handed
theta + eps*z in a scratch tensor while the parameter itself is never touched. MeZO's in-place
+eps, -2eps, +eps sequence leaves about half of all fp32 weights one ulp off after every step
(measured on SmolLM2-135M); here theta changes only by the update.

The dual forward (`probes`, MeZO's default): both probes in one pass over the model on the batch
stacked twice. Every owning module runs its two halves with theta + eps*z and its mirror
2*theta - (theta + eps*z), z drawn once for the pair, so a step draws z twice (the pair and the
update) where the sequential form (`perturbed`, `dual_forward=false`) draws it three times; every
other op runs once on the stacked batch. Both forms build the same weights and score through the
same loss code, and agree bit for bit (tests/test_zo_engine.py). Scratch tensors are borrowed from
a pool per shape instead of allocated per module per forward.
"""
from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

MASK64 = (1 << 64) - 1
# Tensors of CHUNK_MIN_NUMEL elements or more are drawn in CHUNKS slices, each from its own generator;
# on CPU a thread pool draws the slices in parallel (torch's CPU normal_ runs on one core: on 2 cores
# this draws 2.3x faster). The count is fixed, so z depends on (seed, parameter, shape) only, never
# on the machine's thread count.
CHUNKS = 8
CHUNK_MIN_NUMEL = 1 << 16


def mix(*values: int) -> int:
    """splitmix64 over the values: well-spread 63-bit seeds from (run seed, step, index) tuples."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & MASK64)) * 0xBF58476D1CE4E5B9 & MASK64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK64
        x ^= x >> 31
    return x >> 1


def dense(args: tuple) -> tuple:
    """Tensor arguments made contiguous. A module handed a substitute weight may get a strided input (the
    LM head's last-positions slice): CPU bf16 `linear` then takes a path about 200 times slower than with
    the module's own Parameter (1.1 s against 5 ms for SmolLM2's head, measured); fp32 pays 3.4x on the
    strided input whatever the weight (48 against 14 ms)."""
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


class ZOEngine:
    def __init__(self, model: nn.Module, params: list[tuple[str, nn.Parameter]], decay_names: set[str]) -> None:
        self.model = model
        self.names = [n for n, _ in params]
        self.params = [p for _, p in params]
        self.decay = [n in decay_names for n in self.names]
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()))
        self._owners = [
            (module, pname, self._index[id(p)])
            for module in model.modules()
            for pname, p in module.named_parameters(recurse=False)
            if id(p) in self._index
        ]
        self._checked = False
        self._spare: dict[tuple, list[torch.Tensor]] = {}  # scratch tensors by (shape, dtype, device)
        self._lent: dict[int, torch.Tensor] = {}  # by id; held here so no other tensor can take the id

    def _generator(self, device: torch.device, slot: int, seed: int) -> torch.Generator:
        gen = self._generators.get((device, slot))
        if gen is None:
            gen = self._generators[(device, slot)] = torch.Generator(device=device)
        return gen.manual_seed(seed)

    def borrow(self, i: int) -> torch.Tensor:
        """A scratch tensor shaped like parameter i, reused across modules and steps: on a CPU the first
        touch of fresh memory costs more than the arithmetic (an axpy: 2.0 ns per value into a fresh
        allocation, 0.3 ns into a reused one, measured on 28M floats)."""
        p = self.params[i]
        spare = self._spare.get((p.shape, p.dtype, p.device))
        t = spare.pop() if spare else torch.empty(p.shape, dtype=p.dtype, device=p.device)
        self._lent[id(t)] = t
        return t

    def give_back(self, t: torch.Tensor) -> None:
        """Return a borrowed scratch tensor (anything else is ignored)."""
        if self._lent.pop(id(t), None) is not None:
            self._spare.setdefault((t.shape, t.dtype, t.device), []).append(t)

    @contextlib.contextmanager
    def drawn(self, seed: int, i: int) -> Iterator[torch.Tensor]:
        """z for parameter i in a borrowed scratch tensor, for the length of the block."""
        z = self.direction(seed, i, out=self.borrow(i))
        try:
            yield z
        finally:
            self.give_back(z)

    def direction(self, seed: int, i: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """z for parameter i at this seed: the same tensor every time it is asked for (into `out`)."""
        p = self.params[i]
        z = torch.empty(p.shape, dtype=p.dtype, device=p.device) if out is None else out
        if p.numel() < CHUNK_MIN_NUMEL:
            return z.normal_(generator=self._generator(p.device, 0, mix(seed, i)))
        parts = z.view(-1).chunk(CHUNKS)

        def draw(c: int) -> None:
            parts[c].normal_(generator=self._generator(p.device, c, mix(seed, i, c)))

        if p.device.type == "cpu":
            list(self._pool.map(draw, range(len(parts))))
        else:
            for c in range(len(parts)):
                draw(c)
        return z

    def substituted(self, make: Callable[[int], torch.Tensor], indices: Iterable[int] | None = None) -> ContextManager[None]:
        """Forwards inside see `make(i)` in place of parameter i (all, or `indices`): `stacked` with one
        copy. `make` runs when the owning module runs, so only one module's substitute is alive at a time."""
        return self.stacked(1, lambda i, k, previous: make(i), indices)

    def plus(self, seed: int, i: int, eps: float, scales: list[torch.Tensor] | None = None) -> torch.Tensor:
        """theta + eps * z (times `scales[i]` elementwise, HiZOO's factor), built in z's own buffer."""
        z = self.direction(seed, i, out=self.borrow(i))
        if scales is not None:
            z.mul_(scales[i])
        return torch.add(self.params[i], z, alpha=eps, out=z)

    def mirror(self, i: int, plus: torch.Tensor) -> torch.Tensor:
        """The minus probe from the plus one, in place: 2 theta - (theta + eps z). Both forms build it so
        (no second draw of z), and so the two probes are exact mirror images around theta."""
        return plus.neg_().add_(self.params[i], alpha=2)

    def perturbed(self, seed: int, eps: float, sign: int = 1,
                  scales: list[torch.Tensor] | None = None) -> ContextManager[None]:
        """Forwards inside see theta + eps * z(seed) (sign 1) or its mirror (sign -1)."""

        def make(i: int) -> torch.Tensor:
            w = self.plus(seed, i, eps, scales)
            return w if sign > 0 else self.mirror(i, w)

        return self.substituted(make)

    def probes(self, seed: int, eps: float, scales: list[torch.Tensor] | None = None,
               center: bool = False) -> ContextManager[None]:
        """The dual forward: forwards inside take the batch stacked 2 times (3 with `center`); copy by copy,
        every module that owns a trained parameter sees [theta,] theta + eps z, its mirror. z is drawn once
        per module for the pair, where the sequential form (`perturbed` twice) draws it twice."""

        def variant(i: int, k: int, previous: torch.Tensor | None) -> torch.Tensor:
            k -= center
            if k < 0:
                return self.params[i]
            return self.plus(seed, i, eps, scales) if k == 0 else self.mirror(i, previous)

        return self.stacked(2 + center, variant)

    @contextlib.contextmanager
    def stacked(self, copies: int, variant: Callable[[int, int, torch.Tensor | None], torch.Tensor],
                indices: Iterable[int] | None = None) -> Iterator[None]:
        """Forwards inside run on `copies` copies of the batch stacked along dim 0. Every module that owns
        a trained parameter (all, or `indices`) runs once per copy on its slice of the batch, copy k seeing
        `variant(i, k, what copy k - 1 saw)` in place of parameter i; every other op runs once on the whole
        stack. The parameters themselves are left bit-for-bit as they were."""

        running: list[int] = []  # the copy an enclosing owner module is running (RoBERTa's LM head owns a bias)
        chosen = set(range(len(self.params)) if indices is None else indices)
        reached: set[int] = set()

        def wrap(module: nn.Module, slots: list[tuple[str, int]]) -> Callable:
            forward = module.forward
            seen: dict[int, torch.Tensor | None] = {}

            def swap(k: int) -> None:
                for pname, i in slots:
                    module._parameters[pname] = seen[i] = variant(i, k, seen.get(i) if k else None)
                    reached.add(i)

            def restore(done: bool) -> None:
                """Put the parameters back; once the last copy has run, return the scratch tensors."""
                for pname, i in slots:
                    module._parameters[pname] = self.params[i]
                    if done:
                        self.give_back(seen.pop(i))

            def run(*args, **kwargs):
                if running or copies == 1:  # one copy, or inside an owner's copy k: the input is that copy
                    k = running[-1] if running else 0
                    swap(k)
                    try:
                        return forward(*dense(args), **kwargs)
                    finally:
                        restore(done=k == copies - 1)
                batch = next(a.shape[0] for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.dim())
                size, outs = batch // copies, []

                def cut(a, k: int):
                    if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == batch:
                        return a[k * size:(k + 1) * size].contiguous()
                    return a

                try:
                    for k in range(copies):
                        swap(k)
                        running.append(k)
                        try:
                            outs.append(forward(*(cut(a, k) for a in args), **{n: cut(a, k) for n, a in kwargs.items()}))
                        finally:
                            running.pop()
                finally:
                    restore(done=True)
                return torch.cat(outs)

            return run

        slots: dict[nn.Module, list[tuple[str, int]]] = {}
        for module, pname, i in self._owners:
            if i in chosen:
                slots.setdefault(module, []).append((pname, i))
        for module, s in slots.items():
            module.forward = wrap(module, s)
        try:
            yield
        finally:
            for module in slots:
                del module.forward
        if not self._checked and reached:
            self._checked = True
            missed = [self.names[i] for i in chosen if i not in reached]
            if missed:
                warnings.warn(f"ZO: {len(missed)} trainable parameters never seen in a forward, e.g. {missed[:3]}")

    @torch.no_grad()
    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """theta <- (1 - decay) * theta - coeff * z(seed); decay skips biases and norm weights.
        `gains` scales the step of some parameters (DiZO's learning-rate projection ablation)."""
        for i, p in enumerate(self.params):
            gain = gains.get(i, 1.0) if gains else 1.0
            if decay and self.decay[i]:
                p.mul_(1.0 - decay * gain)
            with self.drawn(seed, i) as z:
                p.add_(z, alpha=-coeff * gain)

    @torch.no_grad()
    def revert(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """Undo `update(...)` up to rounding: how ZO rolls back to its best checkpoint."""
        for i, p in enumerate(self.params):
            gain = gains.get(i, 1.0) if gains else 1.0
            with self.drawn(seed, i) as z:
                p.add_(z, alpha=coeff * gain)
            if decay and self.decay[i]:
                p.div_(1.0 - decay * gain)
