"""`benchmark perf`: median step time against median forward time, per method, side by side.

nanoGPT's bench.py discipline: warm up, synchronise, time only the step. Every method gets a
freshly loaded model and the same batch, so numbers in one table are comparable. On CPU the
memory column is process RSS, which the allocator rarely hands back: read it per row, not as a
difference between rows (on CUDA it is the allocator's peak for that method alone).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmark.config import validate
from benchmark.measure import MemoryMonitor, Stopwatch, device_name
from benchmark.models import check_model_name, load_model, resolve_device, resolve_dtype
from benchmark.registry import METHODS, TASKS
from benchmark.scoring import Encoder, classification_loss
from tasks.sampling import sample_splits

WARMUP = 2


def median_time(fn, n: int, device: torch.device, memory: MemoryMonitor | None = None) -> float:
    watch, times = Stopwatch(device), []
    for i in range(WARMUP + n):
        with watch:
            fn(i)
        if memory is not None:
            memory.end_step()
        if i >= WARMUP:
            times.append(watch.last_s)
    return statistics.median(times)


def measure(method: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, examples) -> dict:
    loaded = load_model(args.model, device, dtype)
    model = loaded.model
    batch = Encoder(loaded.tokenizer, 2048, device).collate(examples)
    loss_fn = lambda: classification_loss(model, batch)  # noqa: E731

    def forward(_: int) -> None:
        with torch.no_grad():
            loss_fn()

    model.eval()
    with MemoryMonitor(device) as inference_memory:
        forward_s = median_time(forward, args.steps, device, inference_memory)
    hp = METHODS.get(method).Hparams()
    validate(hp)
    trainer = METHODS.get(method)(hp, model, lambda s: 1.0, 0)
    model.train(trainer.train_mode)
    passes: list[int] = []
    with MemoryMonitor(device) as memory:
        step_s = median_time(lambda i: passes.append(trainer.step(i, loss_fn).forward_passes), args.steps, device,
                             memory)
    return {
        "step_s": step_s, "forward_s": forward_s, "forward_passes": passes[-1],
        "step_over_forwards": step_s / (passes[-1] * forward_s), "steps_per_s": 1 / step_s,
        "peak_memory_gb": memory.peak_gb, "avg_memory_gb": memory.avg_gb,
        "inference_peak_gb": inference_memory.peak_gb,
    }


def main(args: argparse.Namespace) -> None:
    check_model_name(args.model)
    for m in args.methods:
        METHODS.get(m)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    examples = sample_splits(TASKS.get(args.task), 0, args.batch_size, 1, 1).train
    torch.manual_seed(0)
    results = {}
    started = time.time()
    for m in args.methods:
        results[m] = measure(m, args, device, dtype, examples)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"model {args.model} | {device_name(device)} | {str(dtype).removeprefix('torch.')} | batch "
          f"{args.batch_size} | median of {args.steps} steps after {WARMUP} warm-up | {time.time() - started:.0f}s")
    print(f"{'method':12s} {'step s':>8s} {'fwd s':>8s} {'passes':>6s} {'step/(passes*fwd)':>18s} "
          f"{'steps/s':>8s} {'peak GB':>8s} {'infer GB':>8s}")
    for m, r in results.items():
        print(f"{m:12s} {r['step_s']:8.3f} {r['forward_s']:8.3f} {r['forward_passes']:6d} "
              f"{r['step_over_forwards']:18.2f} {r['steps_per_s']:8.2f} {r['peak_memory_gb']:8.2f} "
              f"{r['inference_peak_gb']:8.2f}")
