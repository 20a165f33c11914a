"""z's generators by name: what a ZO step's directions are drawn with.

z is a pure function of (step seed, parameter index, element index); the generator is named in every seed
log's header (version 2), and a log replays with the generator it was written with.

- `philox` (the default where its kernel runs): Philox4x32-10 with Box-Muller, Triton's `tl.randn4x`
  convention. Parameter i's stream has the key mix(step seed, i); z[4j + c] is component c of
  randn4x(key, j). Counter-based, so z is the same for any thread count, chunking or block size, and the
  same on a CPU (`methods/zo/cpu.py`, numba) and on CUDA (`methods/zo/gpu.py`, Triton) to the rounding
  of log, sin and cos. Its kernels also fuse z into its uses (`pair`, `axpy`, `hizoo`): z is never stored.
- `torch-normal` (version-1 logs, and where the philox kernel cannot run): torch's `normal_` in fixed
  chunks of a parameter's rows (`directions.chunk_rows`), each seeded with mix(step seed, i, chunk)
  (mix(step seed, i) for a parameter drawn whole). Every seed log written before version 2 used it.
"""
from __future__ import annotations

import sys
from functools import cache
from typing import Protocol

import numpy as np
import torch

from benchmark.core.errors import BenchmarkError
from methods.zo import path

MASK64 = (1 << 64) - 1


def mix(*values: int) -> int:
    """splitmix64 over the values: well-spread 63-bit seeds from (run seed, step, index) tuples."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & MASK64)) * 0xBF58476D1CE4E5B9 & MASK64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK64
        x ^= x >> 31
    return x >> 1


class Generator(Protocol):
    name: str
    counter_based: bool  # z[start:stop] can be drawn on its own, from any start

    def fuses(self, t: torch.Tensor) -> bool:
        """Whether `pair` and `axpy` take this tensor (z never stored); else z is drawn and torch ops use it."""

    def writes(self, t: torch.Tensor, dtype: torch.dtype) -> bool:
        """Whether `pair` on this tensor can write its probes in `dtype` (a Linear's autocast dtype)."""

    def fill(self, out: torch.Tensor, seed: int, i: int, chunk: int | None, start: int, share: int) -> None:
        """out (contiguous) = z of parameter i at step seed `seed`, elements start .. start + out.numel().
        `chunk`: which of the parameter's draw chunks out is (None: the parameter is drawn whole); `share`:
        the calling thread's slot (a generator with state keeps one per thread)."""


class TorchNormal:
    """torch's `normal_`, one generator per (device, thread), reseeded per chunk (the version-1 stream)."""

    name = "torch-normal"
    counter_based = False

    def __init__(self) -> None:
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}

    def fill(self, out: torch.Tensor, seed: int, i: int, chunk: int | None, start: int, share: int) -> None:
        gen = self._generators.get((out.device, share))
        if gen is None:
            gen = self._generators[(out.device, share)] = torch.Generator(device=out.device)
        out.normal_(generator=gen.manual_seed(mix(seed, i) if chunk is None else mix(seed, i, chunk)))

    def fuses(self, t: torch.Tensor) -> bool:
        return False

    def writes(self, t: torch.Tensor, dtype: torch.dtype) -> bool:
        return False


class Philox:
    """Philox4x32-10 + Box-Muller on the element's counter: numba on a CPU, Triton on CUDA."""

    name = "philox"
    counter_based = True

    def fuses(self, t: torch.Tensor) -> bool:
        """CUDA: any float dtype (Triton computes in float32); CPU: float32 (numba has no bfloat16)."""
        return path.cuda(t.device) or t.dtype == torch.float32

    def writes(self, t: torch.Tensor, dtype: torch.dtype) -> bool:
        """CUDA: any float dtype; CPU: float32 weights to bfloat16 probes (`cpu.pair_bf16`)."""
        return self.fuses(t) and (path.cuda(t.device) or dtype in (torch.float32, torch.bfloat16))

    def pair(self, theta: torch.Tensor, scale: torch.Tensor | None, plus: torch.Tensor, minus: torch.Tensor,
             key: int, start: int, eps: float) -> None:
        """plus = theta + eps z s, minus = theta - eps z s, flat contiguous views, z from counter `start` on."""
        if path.cuda(theta.device):
            from methods.zo import gpu

            gpu.pair(theta, scale, plus, minus, key, start, eps)
        else:
            from methods.zo import cpu

            s = _EMPTY if scale is None else scale.numpy()
            if plus.dtype == torch.bfloat16:
                cpu.pair_bf16(theta.numpy(), s, _bits16(plus), _bits16(minus), key, start, _f32(eps))
            else:
                cpu.pair(theta.numpy(), s, plus.numpy(), minus.numpy(), key, start, _f32(eps))

    def axpy(self, theta: torch.Tensor, key: int, start: int, keep: float, coeff: float) -> None:
        """theta = keep theta - coeff z in place (a flat contiguous view)."""
        if path.cuda(theta.device):
            from methods.zo import gpu

            gpu.axpy(theta, key, start, keep, coeff)
        else:
            from methods.zo import cpu

            cpu.axpy(theta.numpy(), key, start, _f32(keep), _f32(coeff))

    def hizoo(self, theta: torch.Tensor, scale: torch.Tensor, key: int, start: int, keep: float, coeff: float,
              smooth: float, ac: float) -> None:
        """HiZOO's released update of theta and its scale in place (flat contiguous views; `methods/hizoo.py`)."""
        if path.cuda(theta.device):
            from methods.zo import gpu

            gpu.hizoo(theta, scale, key, start, keep, coeff, smooth, ac)
        else:
            from methods.zo import cpu

            cpu.hizoo(theta.numpy(), scale.numpy(), key, start, *map(_f32, (keep, coeff, smooth, ac)))

    def probe_signs(self, theta: torch.Tensor, plus: torch.Tensor, key: int, start: int, eps: float) -> None:
        """plus = theta + eps r, r the Rademacher stream `key` (flat contiguous views): FZOO's probe."""
        if path.cuda(theta.device):
            from methods.zo import gpu

            gpu.probe_signs(theta, plus, key, start, eps)
        else:
            from methods.zo import cpu

            cpu.probe_signs(theta.numpy(), plus.numpy(), key, start, _f32(eps))

    def axpy_signs(self, theta: torch.Tensor, keys: list[int], coeffs: list[float], start: int, keep: float) -> None:
        """theta = keep theta - sum_k coeffs[k] r_k in place, the probes in order (a flat contiguous view)."""
        if path.cuda(theta.device):
            from methods.zo import gpu

            gpu.axpy_signs(theta, keys, coeffs, start, keep)
        else:
            from methods.zo import cpu

            cpu.axpy_signs(theta.numpy(), np.array(keys, np.int64), np.array(coeffs, np.float32), start, _f32(keep))

    def fill(self, out: torch.Tensor, seed: int, i: int, chunk: int | None, start: int, share: int) -> None:
        flat = out.view(-1)
        target = flat if flat.dtype == torch.float32 else torch.empty(flat.shape, dtype=torch.float32, device=out.device)
        if path.cuda(out.device):
            from methods.zo import gpu

            gpu.fill(target, mix(seed, i), start)
        else:
            from methods.zo import cpu

            cpu.fill(target.numpy(), mix(seed, i), start)
        if target is not flat:
            flat.copy_(target)


_EMPTY = np.empty(0, np.float32)  # "no scale" for the CPU kernel (numba compiles one signature for both)


def _f32(x: float) -> np.float32:
    return np.float32(x)


def _bits16(t: torch.Tensor) -> np.ndarray:
    """A bfloat16 tensor's storage as uint16 (numpy has no bfloat16)."""
    return t.view(torch.int16).numpy().view(np.uint16)


GENERATORS = {g.name: g for g in (Philox, TorchNormal)}
AUTO = "auto"
LEGACY = TorchNormal.name  # what a seed log without a `generator` (version 1) was drawn with


@cache
def _kernel_missing(device_type: str) -> str | None:
    """Why the philox kernel cannot run on this device type here (None: it can)."""
    try:
        if device_type == "cuda":
            import triton  # noqa: F401
        else:
            from methods.zo import cpu  # noqa: F401  (imports numba)
    except Exception as exc:  # no wheel, no compiler, a broken install: all mean the same here
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def resolve(name: str, device_type: str) -> str:
    """The generator a run uses: `auto` is philox where its kernel runs (said in one line where it cannot),
    else what was asked for, checked."""
    if name not in (AUTO, *GENERATORS):
        raise BenchmarkError(f"generator {name!r}: one of auto, {', '.join(GENERATORS)}")
    missing = _kernel_missing(device_type) if name in (AUTO, Philox.name) else None
    if missing and name == Philox.name:
        raise BenchmarkError(f"generator philox: its {device_type} kernel cannot run here ({missing})")
    if name == AUTO:
        if missing:
            print(f"ZO directions: the philox kernel cannot run on {device_type} here ({missing}); using torch-normal",
                  file=sys.stderr)
            return LEGACY
        return Philox.name
    return name


def make(name: str, device_type: str) -> Generator:
    return GENERATORS[resolve(name, device_type)]()


def prepare(name: str, device: torch.device) -> None:
    """Load (or compile, the first time on a machine) the generator's kernels, so that a measurement that
    follows counts neither the compile nor the compiler's memory against a step (`benchmark perf`)."""
    make(name, device.type).fill(torch.empty(8, device=device), 0, 0, None, 0, 0)
