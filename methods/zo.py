"""The zeroth-order engine: seeded Gaussian directions, functional perturbation, in-place update.

MeZO's trick is kept: a direction z is never stored; it is regenerated from (step seed, parameter
index), so any parameter's z can be redrawn in any order. Unlike MeZO's released code, the
perturbation is applied functionally: each module that owns a trained parameter is handed
theta + eps*z in a scratch tensor while the parameter itself is never touched. MeZO's in-place
+eps, -2eps, +eps sequence leaves about half of all fp32 weights one ulp off after every step
(measured on SmolLM2-135M); here theta changes only by the update.

The dual forward (`probes`, MeZO's default): both probes in one pass over the model on the batch
stacked twice. Every owning module runs its two halves with theta + eps*z and its mirror, z drawn
once for the pair, so a step draws z twice (the pair and the update) where the sequential form
(`perturbed`, `dual_forward=false`) draws it three times; every other op runs once on the stacked
batch. Every owning module builds the same weights and runs the same kernels on the same shapes in
both forms; the ops in between run on the stacked batch, and a multithreaded CPU kernel may split a
larger batch differently and round it differently in the last bit (measured: RoBERTa's bidirectional
SDPA on a 2-core AMD EPYC, batch 8 against the stack of 16, at 2 threads; equal at 1). So the forms
agree bit for bit on one thread (tests/test_zo_engine.py) and to rounding on more, which HiZOO's
curvature, a second difference over eps^2, amplifies into a different trajectory.

Where the time goes, and what is done about it (SmolLM2-135M, fp32, batch 16, 2 cores; README):
- Linear and Embedding owners (nearly every weight) write each copy's output straight into one
  output tensor (`mm`/`addmm`/`index_select` with `out=`): no `cat` of the halves.
- A weight of STREAM_MIN_NUMEL values or more (the embedding and LM head) is perturbed, used and
  updated a part at a time (STREAM_CHUNKS of z's chunks), so no scratch tensor the size of the
  vocabulary matrix exists: 8 MB of scratch for SmolLM2, not 113. A tied weight (embedding = LM head) is
  therefore drawn by each module that uses it: drawing it once would hold its z through the forward
  (113 MB); with `keep_z` it is drawn once.
- z is drawn in chunks, each from its own generator; the calling thread and a pool share them (torch's
  CPU `normal_` runs on one core). The update runs in those threads too (`apply`), chunk by chunk.
- Scratch tensors are borrowed from a pool per shape instead of allocated per module per forward.
`keep_directions` (MeZO's `keep_z`) holds z from the probes for the update: one draw a step instead
of two, at the memory of one copy of the trained weights (what DiZO's released code does).
"""
from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

MASK64 = (1 << 64) - 1
# A parameter of CHUNK_MIN_NUMEL values or more is drawn in slices along its first dim, each from its own
# generator, shared out among the calling thread and a pool: CHUNKS of them, more for a parameter over
# CHUNKS * CHUNK_MAX_NUMEL values (so no slice is bigger). Fixed by the shape, so z depends on (seed, parameter,
# shape) only, never on the machine's thread count.
CHUNKS = 8
CHUNK_MIN_NUMEL = 1 << 16
CHUNK_MAX_NUMEL = 1 << 20
# `apply` runs the update on slices of this many values in the draw threads: the update of SmolLM2-135M took
# 0.22 s (MeZO) and 0.43 s (HiZOO) against 0.24 and 0.52 at ATen's grain (32768, below which an op starts no
# OpenMP region) and 0.40 s (MeZO) with whole-tensor ops on the calling thread between pooled draws
SLICE = 1 << 17
# A Linear or Embedding weight this large is handled STREAM_CHUNKS chunks at a time (fixed, so results do not
# depend on the thread count either).
STREAM_MIN_NUMEL = 1 << 22
STREAM_CHUNKS = 2
FIT_MARGIN = 0.9  # share of free GPU memory the stacked batch may take

# variant(i, k, previous, rows): what copy k sees in place of rows `rows` of parameter i; `previous` is what
# copy k - 1 saw of those rows (None for copy 0)
Variant = Callable[[int, int, "torch.Tensor | None", slice], torch.Tensor]


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


def chunk_rows(p: torch.Tensor) -> list[tuple[int, int]]:
    """The row ranges of p's first dim that z is drawn in, one generator each (torch.chunk's sizes)."""
    rows = p.shape[0]
    if p.numel() < CHUNK_MIN_NUMEL:
        return [(0, rows)]
    size = -(-rows // max(CHUNKS, -(-p.numel() // CHUNK_MAX_NUMEL)))
    return [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]


def writes_into(x: torch.Tensor) -> bool:
    """Whether ops may write into a given output here (`out=`): not under autograd (DiZO-FO learns through
    the substituted forward) nor autocast (the output's dtype is autocast's)."""
    return not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)


def plain(module: nn.Module, cls: type[nn.Module]) -> bool:
    """An instance of `cls` whose forward is `cls`'s own (a subclass may compute something else)."""
    return isinstance(module, cls) and type(module).forward is cls.forward


class ZOEngine:
    def __init__(self, model: nn.Module, params: list[tuple[str, nn.Parameter]], decay_names: set[str],
                 keep_directions: bool = False) -> None:
        self.model = model
        self.names = [n for n, _ in params]
        self.params = [p for _, p in params]
        self.decay = [n in decay_names for n in self.names]
        self.keep = keep_directions
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}
        self.device = self.params[0].device
        threads = max(1, torch.get_num_threads())
        self._pool = ThreadPoolExecutor(max_workers=threads - 1) if threads > 1 and self.device.type == "cpu" else None
        self._shares = threads if self._pool is not None else 1  # threads that draw: the caller and the pool
        self._chunks = [chunk_rows(p) for p in self.params]
        self._owners = [
            (module, pname, self._index[id(p)])
            for module in model.modules()
            for pname, p in module.named_parameters(recurse=False)
            if id(p) in self._index
        ]
        self._checked = False
        self._spare: dict[tuple, list[torch.Tensor]] = {}  # scratch tensors by (shape, dtype, device)
        self._lent: dict[int, torch.Tensor] = {}  # by id; held here so no other tensor can take the id
        self._kept: dict[tuple[int, int, int], tuple[int, torch.Tensor]] = {}  # (i, rows) -> (seed, z)
        self._work: dict[tuple, torch.Tensor] = {}  # `apply`'s buffer per (thread share, dtype, device)
        self._forward_bytes: int | None = None  # CUDA: one forward's activation peak, once measured
        self._told = False

    # -- directions --------------------------------------------------------------------------------

    def whole(self, i: int) -> slice:
        return slice(0, self.params[i].shape[0])

    def parts(self, i: int) -> list[slice]:
        """The row ranges parameter i is streamed in: STREAM_CHUNKS of z's chunks at a time for a weight of
        STREAM_MIN_NUMEL values or more, else the whole parameter."""
        chunks = self._chunks[i]
        if self.params[i].numel() < STREAM_MIN_NUMEL:
            return [self.whole(i)]
        return [slice(chunks[c][0], chunks[min(c + STREAM_CHUNKS, len(chunks)) - 1][1])
                for c in range(0, len(chunks), STREAM_CHUNKS)]

    def _generator(self, device: torch.device, slot: int, seed: int) -> torch.Generator:
        gen = self._generators.get((device, slot))
        if gen is None:
            gen = self._generators[(device, slot)] = torch.Generator(device=device)
        return gen.manual_seed(seed)

    def direction(self, seed: int, i: int, rows: slice | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """z for parameter i at this seed (its rows `rows`, whole chunks): the same values every time."""
        rows = rows or self.whole(i)
        z = torch.empty_like(self.params[i][rows]) if out is None else out
        jobs = [(z[lo - rows.start:hi - rows.start], self._seed(seed, i, c))
                for c, (lo, hi) in enumerate(self._chunks[i]) if rows.start <= lo and hi <= rows.stop]
        self._shared(jobs, lambda job: job[0].numel(),
                     lambda share, job: job[0].normal_(generator=self._generator(z.device, share, job[1])))
        return z

    def _shared(self, jobs: list, size: Callable[[Any], int], run: Callable[[int, Any], None]) -> None:
        """run(share, job) for every job. On a CPU with a pool the jobs are cut into contiguous shares of
        about equal size, one per thread, the calling thread taking the first: one fork-join. `share` names
        the thread-private generator and buffer a job may use."""
        if self._pool is None or len(jobs) < 2:
            for job in jobs:
                run(0, job)
            return
        n, sizes = self._shares, [size(job) for job in jobs]
        total, shares, acc = sum(sizes), [[] for _ in range(n)], 0
        for job, k in zip(jobs, sizes):
            shares[min(n - 1, acc * n // total)].append(job)
            acc += k

        def work(share: int) -> None:
            with torch.no_grad():  # grad mode is per thread
                for job in shares[share]:
                    run(share, job)

        futures = [self._pool.submit(work, share) for share in range(1, n) if shares[share]]
        work(0)
        for f in futures:
            f.result()

    def borrow(self, i: int, rows: slice | None = None) -> torch.Tensor:
        """A scratch tensor shaped like rows `rows` of parameter i, reused across modules and steps: on a CPU
        the first touch of fresh memory costs more than the arithmetic (an axpy: 2.0 ns per value into a
        fresh allocation, 0.3 ns into a reused one, measured on 28M floats)."""
        p = self.params[i][rows or self.whole(i)]
        spare = self._spare.get((p.shape, p.dtype, p.device))
        t = spare.pop() if spare else torch.empty(p.shape, dtype=p.dtype, device=p.device)
        self._lent[id(t)] = t
        return t

    def give_back(self, t: torch.Tensor) -> None:
        """Return a borrowed scratch tensor (anything else is ignored)."""
        if self._lent.pop(id(t), None) is not None:
            self._spare.setdefault((t.shape, t.dtype, t.device), []).append(t)

    def _z(self, seed: int, i: int, rows: slice) -> tuple[torch.Tensor, bool]:
        """(z, whether the caller owns it as scratch). With `keep`, z lives in a buffer per part that the
        update reads back; else it is drawn into a borrowed scratch tensor."""
        if not self.keep:
            return self.direction(seed, i, rows, out=self.borrow(i, rows)), True
        key = (i, rows.start, rows.stop)
        held = self._kept.get(key)
        if held is None or held[0] != seed:
            z = held[1] if held is not None else torch.empty_like(self.params[i][rows])
            self._kept[key] = (seed, self.direction(seed, i, rows, out=z))
        return self._kept[key][1], False

    def _seed(self, seed: int, i: int, c: int) -> int:
        """The generator seed of chunk c of parameter i (one chunk below CHUNK_MIN_NUMEL: (seed, i))."""
        return mix(seed, i) if self.params[i].numel() < CHUNK_MIN_NUMEL else mix(seed, i, c)

    def apply(self, seed: int, fn: Callable[[int, slice, torch.Tensor], None]) -> None:
        """fn(i, rows, z(seed) of those rows) over every parameter, a piece at a time (fn updates in place,
        elementwise, and may overwrite z): how updates walk the model. With kept z (`keep`), on each kept
        piece. Else, on a CPU, the calling thread and the pool share the chunks: each draws a chunk and
        runs fn on it in slices of at most SLICE values, in the same thread (pooled draws alternating with
        whole-tensor ops on the calling thread left OpenMP threads spinning on the cores the draws needed:
        0.40 s for an update of 0.21 s of draws and 0.03 s of arithmetic, measured)."""
        todo = []
        for i in range(len(self.params)):
            for rows in self.parts(i):
                key = (i, rows.start, rows.stop)
                held = self._kept.get(key)
                if held is not None and held[0] == seed:
                    self._kept[key] = (-1, held[1])  # consumed: fn may write into it
                    fn(i, rows, held[1])
                else:
                    todo += [(i, c) for c, (lo, hi) in enumerate(self._chunks[i]) if rows.start <= lo and hi <= rows.stop]
        if not todo:
            return
        need: dict[tuple[torch.dtype, torch.device], int] = {}
        for i, c in todo:
            p = self.params[i]
            need[(p.dtype, p.device)] = max(need.get((p.dtype, p.device), 0), p[slice(*self._chunks[i][c])].numel())
        for (dtype, device), numel in need.items():  # one buffer per thread, kept across steps
            for share in range(self._shares):
                if (share, dtype, device) not in self._work or self._work[(share, dtype, device)].numel() < numel:
                    self._work[(share, dtype, device)] = torch.empty(numel, dtype=dtype, device=device)

        def run(share: int, job: tuple[int, int]) -> None:
            i, c = job
            p = self.params[i]
            lo, hi = self._chunks[i][c]
            z = self._work[(share, p.dtype, p.device)][:p[lo:hi].numel()].view(p[lo:hi].shape)
            z.normal_(generator=self._generator(p.device, share, self._seed(seed, i, c)))
            step = max(1, SLICE // max(1, p[0].numel())) if self._pool is not None else hi - lo
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                fn(i, slice(a, b), z[a - lo:b - lo])

        self._shared(todo, lambda job: self.params[job[0]][slice(*self._chunks[job[0]][job[1]])].numel(), run)

    # -- perturbed weights ---------------------------------------------------------------------------

    def plus(self, seed: int, i: int, eps: float, scales: list[torch.Tensor] | None = None,
             rows: slice | None = None) -> torch.Tensor:
        """theta + eps * z (times `scales[i]` elementwise, HiZOO's factor) for rows `rows`, in scratch."""
        rows = rows or self.whole(i)
        z, owned = self._z(seed, i, rows)
        w = z if owned else self.borrow(i, rows)
        if scales is not None:
            return torch.addcmul(self.params[i][rows], z, scales[i][rows], value=eps, out=w)
        return torch.add(self.params[i][rows], z, alpha=eps, out=w)

    def mirror(self, i: int, plus: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """The minus probe from the plus one, in place: theta + (theta - plus), one pass (`lerp` at 2). Both
        forms build it so, with no second draw of z."""
        return torch.lerp(plus, self.params[i][rows or self.whole(i)], 2.0, out=plus)

    def perturbed(self, seed: int, eps: float, sign: int = 1,
                  scales: list[torch.Tensor] | None = None) -> ContextManager[None]:
        """Forwards inside see theta + eps * z(seed) (sign 1) or its mirror (sign -1)."""

        def make(i: int, rows: slice) -> torch.Tensor:
            w = self.plus(seed, i, eps, scales, rows)
            return w if sign > 0 else self.mirror(i, w, rows)

        return self.substituted(make)

    def probes(self, seed: int, eps: float, scales: list[torch.Tensor] | None = None,
               center: bool = False) -> ContextManager[None]:
        """The dual forward: forwards inside take the batch stacked 2 times (3 with `center`); copy by copy,
        every module that owns a trained parameter sees [theta,] theta + eps z, its mirror. z is drawn once
        per module for the pair, where the sequential form (`perturbed` twice) draws it twice."""

        def variant(i: int, k: int, previous: torch.Tensor | None, rows: slice) -> torch.Tensor:
            k -= center
            if k < 0:
                return self.params[i][rows]
            return self.plus(seed, i, eps, scales, rows) if k == 0 else self.mirror(i, previous, rows)

        return self.stacked(2 + center, variant)

    def substituted(self, make: Callable[[int, slice], torch.Tensor],
                    indices: Iterable[int] | None = None) -> ContextManager[None]:
        """Forwards inside see `make(i, rows)` in place of rows `rows` of parameter i (all, or `indices`):
        `stacked` with one copy. `make` runs when the owning module runs, so only one module's substitute
        is alive at a time."""
        return self.stacked(1, lambda i, k, previous, rows: make(i, rows), indices)

    # -- the stacked forward -------------------------------------------------------------------------

    @contextlib.contextmanager
    def stacked(self, copies: int, variant: Variant, indices: Iterable[int] | None = None) -> Iterator[None]:
        """Forwards inside run on `copies` copies of the batch stacked along dim 0. Every module that owns
        a trained parameter (all, or `indices`) computes copy k's slice of the batch with `variant(i, k,
        ...)` in place of parameter i; every other op runs once on the whole stack. The parameters
        themselves are left bit-for-bit as they were."""
        running: list[int] = []  # the copy an enclosing owner module is running (RoBERTa's LM head owns a bias)
        chosen = set(range(len(self.params)) if indices is None else indices)
        reached: set[int] = set()
        slots: dict[nn.Module, dict[str, int]] = {}
        for module, pname, i in self._owners:
            if i in chosen:
                slots.setdefault(module, {})[pname] = i
        for module, s in slots.items():
            nested = self._generic(module, s, copies, variant, running, reached)
            if plain(module, nn.Linear):
                module.forward = self._linear(module, s, copies, variant, running, nested, reached)
            elif plain(module, nn.Embedding) and module.max_norm is None and set(s) == {"weight"}:
                module.forward = self._embedding(module, s["weight"], copies, variant, running, nested, reached)
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

    def _generic(self, module: nn.Module, slots: dict[str, int], copies: int, variant: Variant,
                 running: list[int], reached: set[int]) -> Callable:
        """Any owner: swap its parameters for each copy's variant and run its own forward on that copy's
        slice, then concatenate. Inside an enclosing owner's copy k, the input is that copy alone."""
        forward = module.forward
        seen: dict[int, torch.Tensor] = {}

        def swap(k: int) -> None:
            for pname, i in slots.items():
                module._parameters[pname] = seen[i] = variant(i, k, seen.get(i) if k else None, self.whole(i))

        def restore(done: bool) -> None:
            """Put the parameters back; once the last copy has run, return the scratch tensors."""
            for pname, i in slots.items():
                module._parameters[pname] = self.params[i]
                if done:
                    self.give_back(seen.pop(i))

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

    def _copies(self, i: int, rows: slice, copies: int, variant: Variant) -> Iterator[tuple[int, torch.Tensor]]:
        """(k, what copy k sees of rows `rows` of parameter i), copy by copy; scratch returned after the last."""
        made: list[torch.Tensor] = []
        previous = None
        try:
            for k in range(copies):
                previous = variant(i, k, previous, rows)
                made.append(previous)
                yield k, previous
        finally:
            for t in made:
                self.give_back(t)

    def _linear(self, module: nn.Linear, slots: dict[str, int], copies: int, variant: Variant,
                running: list[int], nested: Callable, reached: set[int]) -> Callable:
        """nn.Linear: each copy's product written into its rows of one output (`mm`/`addmm`, `out=`), a
        streamed weight a part at a time."""
        iw, ib = slots.get("weight"), slots.get("bias")

        def run(x: torch.Tensor) -> torch.Tensor:
            if running or not writes_into(x):
                return nested(x)
            reached.update(slots.values())
            x2 = x.contiguous().view(-1, x.shape[-1])
            size = x2.shape[0] // copies
            out = x2.new_empty(x2.shape[0], module.out_features)
            if ib is None:
                biases = [module.bias] * copies
            else:  # all copies' biases at once (small): a streamed weight needs them for every part
                biases = [b.clone() for _, b in self._copies(ib, self.whole(ib), copies, variant)]
            for rows in self.parts(iw) if iw is not None else [slice(0, module.out_features)]:
                weights = self._copies(iw, rows, copies, variant) if iw is not None else (
                    (k, module.weight[rows]) for k in range(copies))
                part = rows.stop - rows.start < module.out_features
                for k, w in weights:
                    xs, o = x2[k * size:(k + 1) * size], out[k * size:(k + 1) * size]
                    b = None if biases[k] is None else biases[k][rows]
                    target = out.new_empty(size, rows.stop - rows.start) if part else o
                    if b is None:
                        torch.mm(xs, w.t(), out=target)
                    else:
                        torch.addmm(b, xs, w.t(), out=target)
                    if part:
                        o[:, rows].copy_(target)
            return out.view(*x.shape[:-1], module.out_features)

        return run

    def _embedding(self, module: nn.Embedding, i: int, copies: int, variant: Variant,
                   running: list[int], nested: Callable, reached: set[int]) -> Callable:
        """nn.Embedding (no max_norm): each copy's rows gathered into one output (`index_select`, `out=`),
        a streamed table a part at a time (the rows of the tokens that fall in it)."""

        def run(ids: torch.Tensor) -> torch.Tensor:
            if running or not writes_into(ids):
                return nested(ids)
            reached.add(i)
            flat = ids.reshape(-1)
            size = flat.numel() // copies
            out = self.params[i].new_empty(flat.numel(), module.embedding_dim)
            parts = self.parts(i)
            for rows in parts:
                for k, w in self._copies(i, rows, copies, variant):
                    idx, o = flat[k * size:(k + 1) * size], out[k * size:(k + 1) * size]
                    if len(parts) == 1:
                        torch.index_select(w, 0, idx, out=o)
                    else:
                        inside = (idx >= rows.start) & (idx < rows.stop)
                        o[inside] = w.index_select(0, idx[inside] - rows.start)
            return out.view(*ids.shape, module.embedding_dim)

        return run

    # -- memory fit (CUDA) ---------------------------------------------------------------------------

    def fits(self, copies: int) -> bool:
        """Whether `copies` stacked batches fit the device. Always on a CPU. On CUDA, only once one
        forward's activation peak is known (`measured`): copies times it within FIT_MARGIN of the free
        memory; a run that does not fit stays sequential, with the same numbers up to the rounding of
        kernels that depend on the batch size (the module docstring)."""
        if self.device.type != "cuda":
            return True
        if self._forward_bytes is None:
            return False
        free = free_bytes(self.device)
        if copies * self._forward_bytes <= FIT_MARGIN * free:
            return True
        if not self._told:
            self._told = True
            warnings.warn(f"ZO: {copies} stacked batches need about {copies * self._forward_bytes / 2**30:.1f} GiB, "
                          f"{free / 2**30:.1f} GiB free: probes run one forward each")
        return False

    @contextlib.contextmanager
    def measured(self) -> Iterator[None]:
        """On CUDA, records the block's activation peak (one forward) the first time it runs."""
        if self.device.type != "cuda" or self._forward_bytes is not None:
            yield
            return
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        yield
        self._forward_bytes = torch.cuda.max_memory_allocated(self.device) - base

    # -- the update ----------------------------------------------------------------------------------

    @torch.no_grad()
    def update(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """theta <- (1 - decay) * theta - coeff * z(seed); decay skips biases and norm weights.
        `gains` scales the step of some parameters (DiZO's learning-rate projection ablation)."""

        def step(i: int, rows: slice, z: torch.Tensor) -> None:
            p, gain = self.params[i][rows], gains.get(i, 1.0) if gains else 1.0
            if decay and self.decay[i]:
                p.mul_(1.0 - decay * gain)
            p.add_(z, alpha=-coeff * gain)

        self.apply(seed, step)

    @torch.no_grad()
    def revert(self, seed: int, coeff: float, decay: float, gains: dict[int, float] | None = None) -> None:
        """Undo `update(...)` up to rounding: how ZO rolls back to its best checkpoint."""

        def step(i: int, rows: slice, z: torch.Tensor) -> None:
            p, gain = self.params[i][rows], gains.get(i, 1.0) if gains else 1.0
            p.add_(z, alpha=coeff * gain)
            if decay and self.decay[i]:
                p.div_(1.0 - decay * gain)

        self.apply(seed, step)


def free_bytes(device: torch.device) -> int:
    """Free CUDA memory: the driver's free plus what torch's allocator holds unused."""
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
