"""z of every trained parameter at a step's seed, as the engine uses it: drawn, fused into both probes of a
parameter, fused into an update (`Directions`), from one of the generators in `generators.py`. On a CPU the
work is shared out among the calling thread and a pool (torch's `normal_` and the numba kernels each run on
one core); the draw chunks below also fix torch-normal's z, which is seeded per chunk."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import torch

from methods.zo import path
from methods.zo.generators import make, mix

# A parameter of CHUNK_MIN_NUMEL values or more is drawn in slices along its first dim, shared out among the
# calling thread and a pool: CHUNKS of them, more for a parameter over CHUNKS * CHUNK_MAX_NUMEL values (so no
# slice is bigger). Fixed by the shape: torch-normal seeds each chunk on its own, so its z depends on (seed,
# parameter, shape) only, never on the machine's thread count (philox's z depends on none of it).
CHUNKS = 8
CHUNK_MIN_NUMEL = 1 << 16
CHUNK_MAX_NUMEL = 1 << 20
# Updates walk a chunk in slices of this many values, z drawn slice by slice where the generator allows (philox:
# the slice's z stays in cache); torch-normal draws a chunk whole. 0.22 s for SmolLM2-135M's MeZO update against
# 0.24 at ATen's grain (32768) and 0.40 with whole-tensor ops on the calling thread (torch-normal, measured).
SLICE = 1 << 17
# `pair` splits a weight among the threads from this many values on: a pool thread's wake-up costs about a
# millisecond on these VMs (README "Speed and memory": inside a forward, splitting or not measured the same)
SPLIT_MIN_NUMEL = 1 << 21


def chunk_rows(p: torch.Tensor) -> list[tuple[int, int]]:
    """The row ranges of p's first dim that z is drawn in (torch.chunk's sizes)."""
    rows = p.shape[0]
    if p.numel() < CHUNK_MIN_NUMEL:
        return [(0, rows)]
    size = -(-rows // max(CHUNKS, -(-p.numel() // CHUNK_MAX_NUMEL)))
    return [(lo, min(lo + size, rows)) for lo in range(0, rows, size)]


class Directions:
    """z of every trained parameter at a step's seed, in the three forms its users need: drawn (`draw`,
    `walk`), fused into both probes of a parameter (`pair`) and fused into an update of every parameter
    (`axpy`). Fused forms never store z where the generator's kernel takes the tensor (`Generator.fuses`);
    elsewhere they draw z and compute with torch ops, the same ops version-1 runs used, so that their logs
    replay bit for bit. On a CPU the work is shared out among the calling thread and a pool, one fork-join
    a call (torch's `normal_` and the numba kernels each run on one core)."""

    def __init__(self, params: list[torch.Tensor], generator: str, keep: bool = False) -> None:
        self.params = params
        device = params[0].device
        self.generator = make(generator, device.type)
        # MeZO's keep_z: z of the probes held for the update, one draw a step instead of two. torch-normal only:
        # a counter-based generator computes z inside its kernels at memory speed, with nothing to keep
        self.keep = keep and not self.generator.counter_based
        threads = max(1, torch.get_num_threads())
        self._pool = ThreadPoolExecutor(max_workers=threads - 1) if threads > 1 and not path.cuda(device) else None
        self._shares = threads if self._pool is not None else 1  # threads that work: the caller and the pool
        self._chunks = [chunk_rows(p) for p in params]
        self._kept: dict[int, dict[tuple[int, int], tuple[int, torch.Tensor]]] = {}  # i -> rows -> (seed, z)
        self._work: dict[tuple, torch.Tensor] = {}  # a drawn slice's buffer per (thread share, dtype, device)

    def _row(self, i: int) -> int:
        p = self.params[i]
        return p[0].numel() if p.dim() else 1

    def _fused(self, t: torch.Tensor) -> bool:
        return not self.keep and self.generator.fuses(t)

    def writes(self, i: int, dtype: torch.dtype) -> bool:
        """Whether `pair` writes parameter i's probes in `dtype` (from its float32 values, rounded once)."""
        return not self.keep and self.generator.writes(self.params[i], dtype)

    def _fill(self, z: torch.Tensor, seed: int, i: int, c: int, row: int, share: int) -> None:
        """z = parameter i's direction from row `row` on (chunk c of it, for a generator that seeds chunks)."""
        chunk = None if self.params[i].numel() < CHUNK_MIN_NUMEL else c
        self.generator.fill(z, seed, i, chunk, row * self._row(i), share)

    def draw(self, seed: int, i: int, rows: slice | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """z of parameter i (its rows `rows`, whole chunks) at this seed: the same values every time."""
        rows = rows or slice(0, self.params[i].shape[0])
        z = torch.empty_like(self.params[i][rows]) if out is None else out
        jobs = [(z[lo - rows.start:hi - rows.start], c, lo) for c, (lo, hi) in enumerate(self._chunks[i])
                if rows.start <= lo and hi <= rows.stop]
        self._shared(jobs, lambda job: job[0].numel(), lambda share, job: self._fill(job[0], seed, i, *job[1:], share))
        return z

    def _z(self, seed: int, i: int, rows: slice, out: torch.Tensor) -> torch.Tensor:
        """z of rows `rows`: drawn into `out`, or (`keep`) into a buffer per part that the update reads back."""
        if not self.keep:
            return self.draw(seed, i, rows, out=out)
        kept, span = self._kept.setdefault(i, {}), (rows.start, rows.stop)
        held = kept.get(span)
        if held is None or held[0] != seed:
            z = held[1] if held is not None else torch.empty_like(self.params[i][rows])
            kept[span] = (seed, self.draw(seed, i, rows, out=z))
        return kept[span][1]

    def pair(self, seed: int, i: int, rows: slice, eps: float, scale: torch.Tensor | None,
             plus: torch.Tensor, minus: torch.Tensor) -> None:
        """plus = theta + eps z (* scale), minus = theta - eps z (* scale), for rows `rows` of parameter i."""
        theta = self.params[i][rows]
        if self._fused(theta):
            key, base, flat = mix(seed, i), rows.start * self._row(i), theta.view(-1)
            s = None if scale is None else scale.reshape(-1)
            views = (flat, s, plus.view(-1), minus.view(-1))
            self._shared(self._ranges(flat.numel()), lambda job: job[1] - job[0], lambda share, job: self.generator.pair(
                *(None if v is None else v[job[0]:job[1]] for v in views), key, base + job[0], eps))
            return
        z = self._z(seed, i, rows, plus)  # version 1's ops: theta + eps z in z's buffer, the mirror by `lerp`
        if scale is not None:
            torch.addcmul(theta, z, scale, value=eps, out=plus)
        else:
            torch.add(theta, z, alpha=eps, out=plus)
        torch.lerp(plus, theta, 2.0, out=minus)

    def _ranges(self, n: int) -> list[tuple[int, int]]:
        """[lo, hi) element ranges of about equal size, one per thread, each a whole number of quads."""
        if n < SPLIT_MIN_NUMEL or self._pool is None:
            return [(0, n)]
        step = -(-n // (4 * self._shares)) * 4
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def axpy(self, seed: int, keep: list[float], coeff: list[float], undo: bool = False,
             indices: set[int] | None = None) -> None:
        """theta_i <- keep_i theta_i - coeff_i z_i for every parameter (or those in `indices`; `undo`: the
        inverse, up to rounding)."""
        def fused(i: int, lo: int, hi: int, key: int) -> None:
            k, c = (1.0 / keep[i], -coeff[i] / keep[i]) if undo else (keep[i], coeff[i])
            self.generator.axpy(self.params[i].view(-1)[lo:hi], key, lo, k, c)

        def step(i: int, rows: slice, z: torch.Tensor) -> None:  # version 1's ops
            p = self.params[i][rows]
            if undo:
                p.add_(z, alpha=coeff[i])
                if keep[i] != 1.0:
                    p.div_(keep[i])
            else:
                if keep[i] != 1.0:
                    p.mul_(keep[i])
                p.add_(z, alpha=-coeff[i])

        self.walk(seed, step, fused, indices)

    def each_fused(self, seed: int, kernel: Callable[[int, int, int, int], None],
                   indices: set[int] | None = None) -> set[int]:
        """kernel(i, lo, hi, key) over the element ranges of every parameter (or those in `indices`) whose
        update the generator fuses (z computed inside the kernel from `key` = mix(seed, i), counters lo .. hi),
        shared out among the threads; returns those parameters' indices."""
        fused = [i for i, p in enumerate(self.params) if self._fused(p) and (indices is None or i in indices)]
        if self._pool is None:  # one kernel a parameter (on CUDA a launch costs more than a chunk's work)
            todo = [(i, 0, self.params[i].numel()) for i in fused]
        else:  # chunks, for the threads to share
            todo = [(i, lo * self._row(i), hi * self._row(i)) for i in fused for lo, hi in self._chunks[i]]
        self._shared(todo, lambda job: job[2] - job[1], lambda share, job: kernel(*job, mix(seed, job[0])))
        return {job[0] for job in todo}

    def walk(self, seed: int, fn: Callable[[int, slice, torch.Tensor], None],
             fused: Callable[[int, int, int, int], None] | None = None, indices: set[int] | None = None) -> None:
        """An update over every parameter (or those in `indices`): `fused(i, lo, hi, key)` where the
        generator's kernel computes z itself (`each_fused`), else fn(i, rows, z of those rows) a piece at a
        time (fn works in place, elementwise, and may overwrite z: the ops version-1 runs used). Kept z
        (`keep`) is used where held; else the calling thread and the pool share the chunks, each drawing z
        and running fn slice by slice in the same thread."""
        skip = self.each_fused(seed, fused, indices) if fused is not None else set()
        todo = []
        for i in range(len(self.params)):
            if i in skip or (indices is not None and i not in indices):
                continue
            kept, done = self._kept.get(i, {}), set()
            for span, (held_seed, z) in kept.items():
                if held_seed == seed:
                    kept[span] = (-1, z)  # consumed: fn may write into it
                    fn(i, slice(*span), z)
                    done.add(span)
            todo += [(i, c) for c, (lo, hi) in enumerate(self._chunks[i])
                     if not any(a <= lo and hi <= b for a, b in done)]
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
            buffer = self._work[(share, p.dtype, p.device)]
            step = max(1, SLICE // self._row(i)) if self._pool is not None else hi - lo
            if not self.generator.counter_based:  # drawn a chunk at a time (its seed is the chunk's)
                chunk = buffer[:p[lo:hi].numel()].view(p[lo:hi].shape)
                self._fill(chunk, seed, i, c, lo, share)
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                if self.generator.counter_based:
                    z = buffer[:p[a:b].numel()].view(p[a:b].shape)
                    self._fill(z, seed, i, c, a, share)
                else:
                    z = chunk[a - lo:b - lo]
                fn(i, slice(a, b), z)

        self._shared(todo, lambda job: self.params[job[0]][slice(*self._chunks[job[0]][job[1]])].numel(), run)

    # -- Rademacher directions (FZOO): r = +-1 per value, from the same (seed, parameter, element) counters

    def probe_signs(self, seed: int, i: int, rows: slice, eps: float, plus: torch.Tensor) -> None:
        """plus = theta + eps r(seed) for rows `rows` of parameter i (r: the generator's sign stream; a
        generator without one takes the signs of its normals, z >= 0 -> +1)."""
        theta = self.params[i][rows]
        if self._fused(theta):
            key, base, flat, out = mix(seed, i), rows.start * self._row(i), theta.view(-1), plus.view(-1)
            self._shared(self._ranges(flat.numel()), lambda job: job[1] - job[0], lambda share, job:
                         self.generator.probe_signs(flat[job[0]:job[1]], out[job[0]:job[1]], key, base + job[0], eps))
            return
        r = signs(self.draw(seed, i, rows, out=plus))
        torch.add(theta, r, alpha=eps, out=plus)

    def axpy_signs(self, seeds: list[int], keep: list[float], coeffs: list[float], undo: bool = False) -> None:
        """theta_i <- keep_i theta_i - sum_k coeffs[k] r(seeds[k])_i, the probes in order (`undo`: the
        inverse, up to rounding, the probes in reverse)."""
        def fused(i: int, lo: int, hi: int, key: int) -> None:
            k, c = (1.0 / keep[i], [-x / keep[i] for x in coeffs]) if undo else (keep[i], coeffs)
            keys = [mix(s, i) for s in seeds]
            self.generator.axpy_signs(self.params[i].view(-1)[lo:hi], keys, c, lo, k)

        done = self.each_fused(seeds[0], fused)
        rest = {i for i in range(len(self.params)) if i not in done}
        if not rest:
            return
        order = list(zip(seeds, coeffs))[::-1] if undo else list(zip(seeds, coeffs))
        if not undo:
            for i in rest:
                if keep[i] != 1.0:
                    self.params[i].mul_(keep[i])
        for seed, coeff in order:
            self.walk(seed, lambda i, rows, z, c=coeff: self.params[i][rows].add_(signs(z), alpha=c if undo else -c),
                      indices=rest)
        if undo:
            for i in rest:
                if keep[i] != 1.0:
                    self.params[i].div_(keep[i])

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


def signs(z: torch.Tensor) -> torch.Tensor:
    """z's Rademacher signs in place: +1 where z >= 0, else -1 (the sign stream of a generator that draws
    normals only)."""
    return z.copy_(torch.where(z >= 0, 1.0, -1.0))
