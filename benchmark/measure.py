"""Memory and time measurement that means the same thing on CPU and GPU.

Memory is tracked per step: on CUDA the allocator's peak since the last step (the peak counter is
reset every step), on CPU the process RSS sampled by a background thread. The run's peak is the
max of the step peaks and its average the mean, as peft's method_comparison reports them.
"""
from __future__ import annotations

import platform
import threading
import time
from pathlib import Path

import psutil
import torch

from benchmark.core import names
from methods.layers import find_modules

GB = 1024**3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def hardware_name(device: torch.device) -> str:
    """What a timing was measured on: the GPU's name, or on CPU `cpu_name()` (a bare "cpu" says nothing
    about a number that doubles between an AMX Xeon and an AVX-512 EPYC)."""
    return device_name(device) if device.type == "cuda" else cpu_name()


def cpu_name() -> str:
    """The host CPU's model name and the instruction set torch's kernels use on it (the `cpu` tag): CPUs
    differ in speed and in bf16 support, so a number is quoted with the CPU that gave it."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


class MemoryMonitor:
    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.step_peaks: list[float] = []
        self._window_max = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()

    def __enter__(self) -> "MemoryMonitor":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._window_max = self._process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._window_max = max(self._window_max, self._process.memory_info().rss)

    def end_step(self) -> float:
        """Peak memory (GB) since the previous call; call once per training step."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            peak = max(self._window_max, self._process.memory_info().rss)
            self._window_max = 0
        self.step_peaks.append(peak / GB)
        return peak / GB

    @property
    def peak_gb(self) -> float:
        """NaN when no step ran (zero-shot): nothing was measured, which is not zero."""
        return max(self.step_peaks, default=float("nan"))

    @property
    def avg_gb(self) -> float:
        return sum(self.step_peaks) / len(self.step_peaks) if self.step_peaks else float("nan")


class Stopwatch:
    """Accumulates synchronised wall time of the blocks it times (evaluation stays outside)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total_s = 0.0
        self.last_s = 0.0

    def __enter__(self) -> "Stopwatch":
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.last_s = time.perf_counter() - self._start
        self.total_s += self.last_s


class LayerDrift:
    """||theta_t - theta_0|| of every attention projection (q, k, v, o) by layer: the paper's
    Figure 1. Keeps a host copy of those weights (about a third of an OPT model), so it is off
    unless asked for; with LoRA the frozen base weights do not move, so use it on full-parameter runs."""

    ROLES = ("q", "k", "v", "o")

    def __init__(self, model: torch.nn.Module) -> None:
        self.weights = []
        for role in self.ROLES:
            for layer, (_, module) in enumerate(find_modules(model, (role,))):
                key = names.DRIFT.format(role=role, layer=layer)
                self.weights.append((key, module.weight, module.weight.detach().to("cpu", copy=True)))

    def metrics(self) -> dict[str, float]:
        return {key: (w.detach().cpu().float() - w0.float()).norm().item() for key, w, w0 in self.weights}
