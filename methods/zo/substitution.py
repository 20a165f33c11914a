"""Forwards that see substitute weights: the perturbed probes of a ZO step, DiZO's projected layers.

Inside `Substitution.stacked(copies, make)`, a forward takes the batch stacked `copies` times along dim 0;
every module that owns a trained parameter runs copy k's slice of the batch with `make(i, rows)[k]` in place
of (rows `rows` of) parameter i, and every other op runs once on the whole stack. The parameters themselves
are never touched: theta moves only by an update. `make` runs when the owning module runs, so only one
module's substitutes are alive at a time; a weight of STREAM_MIN_NUMEL values or more (an embedding, an LM
head) is substituted a part of its rows at a time (`parts`), so no substitute the size of the vocabulary
matrix exists (8 MB of scratch for SmolLM2, not 113). A tied weight (embedding = LM head) is therefore
made by each module that uses it.

Linear and Embedding owners (nearly every weight) write each copy's output straight into its rows of one
output tensor (`mm`/`addmm`/`index_select` with `out=`); `cat` of the halves cost 0.14 s a forward on
SmolLM2 (README). Any other owner runs its own forward once per copy on that copy's slice. Scratch tensors
come from a pool per shape (`borrow`): on a CPU the first touch of fresh memory costs more than the
arithmetic that fills it (an axpy: 2.0 ns a value into a fresh allocation, 0.3 ns into a reused one).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from methods.zo import path
from methods.zo.directions import chunk_rows

STREAM_MIN_NUMEL = 1 << 22
# A streamed weight's part: whole draw chunks (`chunk_rows`) up to this many values. On a CPU two chunks (2.1M values,
# 8 MB a probe); on CUDA, where each part costs kernel launches, 32M (64 MB a probe in fp16).
PART_NUMEL = {"cpu": 5 << 19, "cuda": 1 << 25}

# make(i, rows, dtype): what each copy sees in place of rows `rows` of parameter i, best in `dtype` (None: the
# parameter's own) where the consumer computes in it (a Linear under autocast); borrowed scratch is given back
Make = Callable[[int, slice, "torch.dtype | None"], Sequence[torch.Tensor]]


def dense(args: tuple) -> tuple:
    """Tensor arguments made contiguous. A module handed a substitute weight may get a strided input (the
    LM head's last-positions slice): CPU bf16 `linear` then takes a path about 200 times slower than with
    the module's own Parameter (1.1 s against 5 ms for SmolLM2's head, measured); fp32 pays 3.4x on the
    strided input whatever the weight (48 against 14 ms)."""
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def writes_into() -> bool:
    """Whether ops may write into a given output here (`out=`): not under autograd (DiZO-FO learns through
    the substituted forward)."""
    return not torch.is_grad_enabled()


def compute_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype a Linear computes in here: autocast's where it is on (the substitutes are then made in it
    directly, not cast from a float32 copy at every call), else None (the weights' own)."""
    return torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None


def plain(module: nn.Module, cls: type[nn.Module]) -> bool:
    """An instance of `cls` whose forward is `cls`'s own (a subclass may compute something else)."""
    return isinstance(module, cls) and type(module).forward is cls.forward


class Substitution:
    def __init__(self, model: nn.Module, params: list[nn.Parameter], names: list[str]) -> None:
        self.params, self.names = params, names
        index = {id(p): i for i, p in enumerate(params)}
        self._owners = [(module, pname, index[id(p)]) for module in model.modules()
                        for pname, p in module.named_parameters(recurse=False) if id(p) in index]
        self._spare: dict[tuple, list[torch.Tensor]] = {}  # scratch tensors by (shape, dtype, device)
        self._lent: dict[int, torch.Tensor] = {}  # by id; held here so no other tensor can take the id
        self._checked = False

    def whole(self, i: int) -> slice:
        return slice(0, self.params[i].shape[0])

    def parts(self, i: int) -> list[slice]:
        """The row ranges parameter i is substituted in: runs of its draw chunks of at most PART_NUMEL values
        (at least one chunk) for a weight of STREAM_MIN_NUMEL values or more, else the whole parameter."""
        p = self.params[i]
        if p.numel() < STREAM_MIN_NUMEL:
            return [self.whole(i)]
        limit, row = PART_NUMEL["cuda" if path.cuda(p.device) else "cpu"], p[0].numel()
        out: list[slice] = []
        for lo, hi in chunk_rows(p):
            if out and (hi - out[-1].start) * row <= limit:
                out[-1] = slice(out[-1].start, hi)
            else:
                out.append(slice(lo, hi))
        return out

    def borrow(self, i: int, rows: slice | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A scratch tensor shaped like rows `rows` of parameter i (in `dtype`, default its own), reused across
        modules and steps."""
        p = self.params[i][rows or self.whole(i)]
        dtype = dtype or p.dtype
        spare = self._spare.get((p.shape, dtype, p.device))
        t = spare.pop() if spare else torch.empty(p.shape, dtype=dtype, device=p.device)
        self._lent[id(t)] = t
        return t

    def give_back(self, t: torch.Tensor) -> None:
        """Return a borrowed scratch tensor (anything else is ignored)."""
        if self._lent.pop(id(t), None) is not None:
            self._spare.setdefault((t.shape, t.dtype, t.device), []).append(t)

    @contextlib.contextmanager
    def stacked(self, copies: int, make: Make, indices: Iterable[int] | None = None) -> Iterator[None]:
        """Forwards inside run on `copies` copies of the batch stacked along dim 0, copy k of every owner of
        a trained parameter (all, or `indices`) with make(i, rows)[k] in its place."""
        running: list[int] = []  # the copy an enclosing owner module is running (RoBERTa's LM head owns a bias)
        chosen = set(range(len(self.params)) if indices is None else indices)
        reached: set[int] = set()
        slots: dict[nn.Module, dict[str, int]] = {}
        for module, pname, i in self._owners:
            if i in chosen:
                slots.setdefault(module, {})[pname] = i
        for module, s in slots.items():
            nested = self._generic(module, s, copies, make, running, reached)
            if plain(module, nn.Linear):
                module.forward = self._linear(module, s, copies, make, running, nested, reached)
            elif plain(module, nn.Embedding) and module.max_norm is None and set(s) == {"weight"}:
                module.forward = self._embedding(module, s["weight"], copies, make, running, nested, reached)
            else:
                module.forward = nested
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

    @contextlib.contextmanager
    def _made(self, i: int, rows: slice, make: Make, dtype: torch.dtype | None = None
              ) -> Iterator[Sequence[torch.Tensor]]:
        """make(i, rows, dtype), its scratch given back after the block."""
        made = make(i, rows, dtype)
        try:
            yield made
        finally:
            for t in made:
                self.give_back(t)

    def _generic(self, module: nn.Module, slots: dict[str, int], copies: int, make: Make,
                 running: list[int], reached: set[int]) -> Callable:
        """Any owner: swap its parameters for each copy's substitute and run its own forward on that copy's
        slice, then concatenate. Inside an enclosing owner's copy k, the input is that copy alone."""
        forward = module.forward
        made: dict[int, Sequence[torch.Tensor]] = {}

        def swap(k: int) -> None:
            for pname, i in slots.items():
                if i not in made:
                    made[i] = make(i, self.whole(i), None)
                module._parameters[pname] = made[i][k]

        def restore(done: bool) -> None:
            """Put the parameters back; once the last copy has run, return the scratch tensors."""
            for pname, i in slots.items():
                module._parameters[pname] = self.params[i]
                if done:
                    for t in made.pop(i, ()):
                        self.give_back(t)

        def run(*args, **kwargs):
            reached.update(slots.values())
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

    def _linear(self, module: nn.Linear, slots: dict[str, int], copies: int, make: Make,
                running: list[int], nested: Callable, reached: set[int]) -> Callable:
        """nn.Linear: each copy's product written into its rows of one output (`mm`/`addmm`, `out=`), a
        streamed weight a part at a time."""
        iw, ib = slots.get("weight"), slots.get("bias")

        def run(x: torch.Tensor) -> torch.Tensor:
            if running or not writes_into():
                return nested(x)
            reached.update(slots.values())
            dtype = compute_dtype(x)
            x2 = x.contiguous().view(-1, x.shape[-1])
            x2 = x2 if dtype is None else x2.to(dtype)
            size = x2.shape[0] // copies
            out = x2.new_empty(x2.shape[0], module.out_features)
            cast = (lambda t: t) if dtype is None else (lambda t: t if t is None or t.dtype == dtype else t.to(dtype))
            with contextlib.ExitStack() as held, torch.autocast(x.device.type, enabled=False):
                biases = ([module.bias] * copies if ib is None
                          else held.enter_context(self._made(ib, self.whole(ib), make, dtype)))
                for rows in self.parts(iw) if iw is not None else [slice(0, module.out_features)]:
                    with self._made(iw, rows, make, dtype) if iw is not None else contextlib.nullcontext(
                            [module.weight[rows]] * copies) as weights:
                        part = rows.stop - rows.start < module.out_features
                        for k, w in enumerate(weights):
                            xs, o = x2[k * size:(k + 1) * size], out[k * size:(k + 1) * size]
                            b = None if biases[k] is None else cast(biases[k][rows])
                            target = out.new_empty(size, rows.stop - rows.start) if part else o
                            if b is None:
                                torch.mm(xs, cast(w).t(), out=target)
                            else:
                                torch.addmm(b, xs, cast(w).t(), out=target)
                            if part:
                                o[:, rows].copy_(target)
            return out.view(*x.shape[:-1], module.out_features)

        return run

    def _embedding(self, module: nn.Embedding, i: int, copies: int, make: Make,
                   running: list[int], nested: Callable, reached: set[int]) -> Callable:
        """nn.Embedding (no max_norm): each copy's rows gathered into one output (`index_select`, `out=`),
        a streamed table a part at a time (the rows of the tokens that fall in it)."""

        def run(ids: torch.Tensor) -> torch.Tensor:
            if running or not writes_into():
                return nested(ids)
            reached.add(i)
            flat = ids.reshape(-1)
            size = flat.numel() // copies
            out = self.params[i].new_empty(flat.numel(), module.embedding_dim)
            parts = self.parts(i)
            for rows in parts:
                with self._made(i, rows, make) as weights:
                    for k, w in enumerate(weights):
                        idx, o = flat[k * size:(k + 1) * size], out[k * size:(k + 1) * size]
                        if len(parts) == 1:
                            torch.index_select(w, 0, idx, out=o)
                        else:  # the tokens whose rows fall in this part (no boolean indexing: no device sync)
                            local = idx - rows.start
                            inside = ((local >= 0) & (local < rows.stop - rows.start)).unsqueeze(1)
                            picked = w.index_select(0, local.clamp(0, rows.stop - rows.start - 1))
                            torch.where(inside, picked, o, out=o)
            return out.view(*ids.shape, module.embedding_dim)

        return run
