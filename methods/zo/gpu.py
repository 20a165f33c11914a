"""The CUDA kernels of z: Triton's own `tl.randn4x`, the stream `methods/zo/cpu.py` computes on a CPU, fused
into its uses as there (`fill`, `pair`, `axpy`).

z[4j + c] of a parameter is component c of `randn4x(key, j)`: one Philox4x32-10 call gives four normals, so
each program takes BLOCK quads and handles the four values of each (the values of a range's first and last
quads that fall outside it are masked). The kernels live in `triton_kernels.py`, imported on first use (a
CPU install need not have triton); the tests run them on CPU tensors through Triton's interpreter
(`TRITON_INTERPRET=1` set before triton is imported: tests/conftest.py).
"""
from __future__ import annotations

from functools import cache

import torch

BLOCK = 1024  # quads per program: z does not depend on it (a test holds that)


@cache
def _kernels():
    from methods.zo import triton_kernels

    return triton_kernels


def _grid(n: int, start: int, block: int) -> tuple[int]:
    quads = (start + n + 3) // 4 - start // 4
    return (-(-quads // block),)


def fill(out: torch.Tensor, key: int, start: int, block: int = BLOCK) -> None:
    """out (contiguous float32) = z[start : start + out.numel()] of the stream `key`."""
    if out.numel():
        _kernels().fill[_grid(out.numel(), start, block)](out, key, start, out.numel(), BLOCK=block)


def pair(theta: torch.Tensor, scale: torch.Tensor | None, plus: torch.Tensor, minus: torch.Tensor, key: int,
         start: int, eps: float, block: int = BLOCK) -> None:
    """plus = theta + eps z s, minus = theta - eps z s (contiguous, any float dtype; arithmetic in float32)."""
    n = theta.numel()
    if n:
        _kernels().pair[_grid(n, start, block)](theta, theta if scale is None else scale, plus, minus, key, start,
                                                   n, eps, SCALED=scale is not None, BLOCK=block)


def axpy(theta: torch.Tensor, key: int, start: int, keep: float, coeff: float, block: int = BLOCK) -> None:
    """theta = keep theta - coeff z, in place."""
    n = theta.numel()
    if n:
        _kernels().axpy[_grid(n, start, block)](theta, key, start, n, keep, coeff, BLOCK=block)


def hizoo(theta: torch.Tensor, scale: torch.Tensor, key: int, start: int, keep: float, coeff: float, smooth: float,
          ac: float, block: int = BLOCK) -> None:
    """HiZOO's released update in place (`methods/zo/cpu.py:hizoo`)."""
    n = theta.numel()
    if n:
        _kernels().hizoo[_grid(n, start, block)](theta, scale, key, start, n, keep, coeff, smooth, ac, BLOCK=block)


def probe_signs(theta: torch.Tensor, plus: torch.Tensor, key: int, start: int, eps: float, block: int = BLOCK) -> None:
    """plus = theta + eps r, r the Rademacher stream `key` (`methods/zo/cpu.py:probe_signs`)."""
    n = theta.numel()
    if n:
        _kernels().probe_signs[_grid(n, start, block)](theta, plus, key, start, n, eps, BLOCK=block)


def axpy_signs(theta: torch.Tensor, keys: list[int], coeffs: list[float], start: int, keep: float,
               block: int = BLOCK) -> None:
    """theta = keep theta - sum_k coeffs[k] r_k, the probes in order: one launch a probe (a value rounds
    as on a CPU: the scale, then each probe's term)."""
    n = theta.numel()
    for k, (key, coeff) in enumerate(zip(keys, coeffs)):
        if n:
            _kernels().axpy_signs[_grid(n, start, block)](theta, key, start, n, keep, coeff,
                                                           SCALE=k == 0 and keep != 1.0, BLOCK=block)
