"""`benchmark perf --directions`: what z costs, per generator, as the engine uses it: ns a value to draw z
(`draw`), to build both probes from theta (`pair`) and to update theta (`axpy`), at 1 thread and at every
thread the machine has (CPU), or on the GPU. The probes and the update are fused for philox (z never stored)
and torch ops on a drawn z for torch-normal (version 1's path). One weight of `numel` fp32 values, medians
of `repeats` after a warm-up, each block synchronised (nanoGPT's bench.py discipline)."""
from __future__ import annotations

import statistics

import torch

from benchmark.measure import Stopwatch, hardware_name
from methods.zo.directions import Directions
from methods.zo.generators import GENERATORS

NUMEL = 1 << 24
REPEATS = 5


def time_ns(fn, device: torch.device, n: int, repeats: int) -> float:
    watch, times = Stopwatch(device), []
    for i in range(repeats + 1):
        with watch:
            fn()
        if i:
            times.append(watch.last_s)
    return statistics.median(times) / n * 1e9


def measure(device: torch.device, threads: int, generator: str, numel: int, repeats: int) -> dict[str, float]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        theta = torch.nn.Parameter(torch.randn(numel // 1024, 1024, device=device))
        directions = Directions([theta], generator)
        z, plus, minus = torch.empty_like(theta), torch.empty_like(theta), torch.empty_like(theta)
        rows = slice(0, theta.shape[0])
        with torch.no_grad():
            return {
                "draw": time_ns(lambda: directions.draw(7, 0, out=z), device, numel, repeats),
                "pair": time_ns(lambda: directions.pair(7, 0, rows, 1e-3, None, plus, minus), device, numel, repeats),
                "axpy": time_ns(lambda: directions.axpy(7, [1.0], [1e-9]), device, numel, repeats),
            }
    finally:
        torch.set_num_threads(before)


def main(device: torch.device, numel: int = NUMEL, repeats: int = REPEATS) -> list[dict]:
    counts = [1] if device.type == "cuda" else sorted({1, torch.get_num_threads()})
    rows = [{"generator": g, "threads": t, **measure(device, t, g, numel, repeats)} for t in counts for g in GENERATORS]
    print(f"z per value (ns), {numel:,} fp32 values | {hardware_name(device)} | median of {repeats}")
    print(f"{'generator':14s} {'threads':>7s} {'draw':>7s} {'pair':>7s} {'axpy':>7s}")
    for r in rows:
        print(f"{r['generator']:14s} {r['threads']:7d} {r['draw']:7.3f} {r['pair']:7.3f} {r['axpy']:7.3f}")
    return rows
