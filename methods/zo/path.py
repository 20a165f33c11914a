"""Which path the ZO engine's work on a device takes: CUDA's (Triton kernels, one launch a parameter, no thread
pool, the stacked batch only where it fits, decided once per run) or the CPU's (numba kernels shared out among a
thread pool, always stacked).

The device decides, except inside `cuda_on_cpu()`: the tests' seam that runs CUDA's path on CPU tensors through
Triton's interpreter (`TRITON_INTERPRET=1`), so a machine without a GPU holds that path's launches and its
synchronisations (tests/test_gpu_path.py). There the device's memory is a stated size (`SIMULATED_FREE`), since
no CUDA allocator answers.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

SIMULATED_FREE = 1 << 40  # bytes "free" on the simulated device: every stacked batch fits
_simulated = False


def cuda(device: torch.device) -> bool:
    """Whether work on `device` takes CUDA's path."""
    return device.type == "cuda" or _simulated


@contextlib.contextmanager
def cuda_on_cpu() -> Iterator[None]:
    """CUDA's path on CPU tensors, for the tests (Triton's interpreter runs its kernels)."""
    global _simulated
    was, _simulated = _simulated, True
    try:
        yield
    finally:
        _simulated = was


def free_bytes(device: torch.device) -> int:
    """Free device memory: the driver's free plus what torch's allocator holds unused."""
    if device.type != "cuda":
        return SIMULATED_FREE
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


@contextlib.contextmanager
def peak(device: torch.device, out: list[int]) -> Iterator[None]:
    """Appends to `out` the block's peak of allocated device memory above its start (0 where no CUDA
    allocator answers)."""
    if device.type != "cuda":
        yield
        out.append(0)
        return
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    yield
    out.append(torch.cuda.max_memory_allocated(device) - base)
