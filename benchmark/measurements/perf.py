"""`benchmark perf`: per method, median step time against median forward time, side by side.

nanoGPT's bench.py discipline: warm up, synchronise, time only what is meant. Each method runs in
its own child process on a freshly loaded model and the same batch, so its peak memory (CUDA
allocator peak, or process RSS on CPU) is its own and not a leftover of the previous row.
`mezo-reference` is MeZO's released engine (methods/mezo_reference.py) with its scoring (one row
per candidate, LM head over every position): the baseline `speedup_vs_reference` is taken against.
A method whose steps differ (`cycle`: MeZO-SVRG's anchor every q steps) is timed a cycle at a time and its
row gives the mean step and forwards. DiZO rows add their projection, amortised over `projection_interval` steps,
and report
`projection_overhead`: the projection's time over that of the forwards it adds (`projection_passes`).
`state` is what the method declares it holds across steps, in copies of the trained weights
(`state_copies`), beside the peak measured here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import time
from typing import Callable

import torch

from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import apply_overrides, parse_set_args, validate
from benchmark.measure import MemoryMonitor, Stopwatch, hardware_name
from benchmark.models import check_model_name, load_model, model_kind, resolve_device, resolve_precision
from benchmark.scoring import BatchLoss, Encoder
from methods.mezo_reference import ReferenceMeZO
from methods.registry import METHODS
from methods.zo.generators import prepare
from tasks.registry import TASKS
from tasks.sampling import sample_splits

WARMUP = 2
REFERENCE = "mezo-reference"


def default_methods() -> list[str]:
    """MeZO's released engine, then every registered method that trains."""
    return [REFERENCE] + [name for name in METHODS.names() if METHODS.get(name).trains]


def hparam_sets(hp: object, sets: dict[str, str]) -> dict[str, str]:
    """The `--set` overrides this method's hyperparameters have a field for (dual_forward=false: the
    sequential ZO form)."""
    fields = {f.name for f in dataclasses.fields(hp)}
    return {k: v for k, v in sets.items() if k in fields}


def median_time(fn: Callable[[int], object], n: int, device: torch.device,
                memory: MemoryMonitor | None = None) -> float:
    watch, times = Stopwatch(device), []
    for i in range(WARMUP + n):
        with watch:
            fn(i)
        if memory is not None:
            memory.end_step()
        if i >= WARMUP:
            times.append(watch.last_s)
    return statistics.median(times)


def measure(method: str, args: argparse.Namespace) -> dict:
    """One method's row; runs in a child process."""
    device = resolve_device(args.device)
    precision = resolve_precision(args.dtype, device)
    with precision.compute(device):
        return measure_in(method, args, device, precision.weights)


def one_batch(model_name: str, task: str, batch_size: int, device: torch.device, dtype: torch.dtype,
              reference: bool = False) -> BatchLoss:
    """A freshly loaded model and the loss of the task's first `batch_size` training examples: what every
    timing here runs on (`reference`: scored as MeZO's released code scores, one row per candidate, the LM
    head over every position)."""
    _, prompt = TASKS.get(task).template(model_kind(model_name))
    examples = sample_splits(TASKS.get(task), prompt.render, 0, batch_size, 1, 1).train
    torch.manual_seed(0)
    loaded = load_model(model_name, device, dtype)
    batch = Encoder(loaded.tokenizer, 2048, device, share_prompt=not reference,
                    masked=loaded.kind == "masked").collate(examples)
    return BatchLoss(loaded.model, batch, full_logits=reference)


def measure_in(method: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    reference = method == REFERENCE
    loss_fn = one_batch(args.model, args.task, args.batch_size, device, dtype, reference)
    model = loss_fn.model

    def forward(_: int) -> None:
        with torch.no_grad():
            loss_fn()

    model.eval()
    cls = ReferenceMeZO if reference else METHODS.get(method)
    hp = cls.Hparams()
    apply_overrides([hp], hparam_sets(hp, args.set))
    validate(hp)
    if hasattr(hp, "generator"):  # the kernels loaded first: their code is the process's, not a step's memory
        prepare(hp.generator, device)
    with MemoryMonitor(device) as inference:
        forward_s = median_time(forward, args.steps, device, inference)
    trainer = cls(hp, model, lambda s: 1.0, 0)
    model.train(trainer.first_order)
    passes: list[int] = []
    fresh = lambda: loss_fn  # noqa: E731  (timing only: the same batch stands in for a fresh one)
    cycle = trainer.cycle()  # steps whose work repeats (MeZO-SVRG: an anchor step, then q - 1 corrected ones)

    def steps(i: int) -> None:
        for k in range(cycle):
            passes.append(trainer.step(i * cycle + k, loss_fn, fresh).forward_passes)

    with MemoryMonitor(device) as memory:
        step_s = median_time(steps, args.steps, device, memory) / cycle
        mean_passes = sum(passes[-cycle:]) / cycle
        row = {"step_s": step_s, "forward_s": forward_s, "forward_passes": mean_passes,
               "step_over_forwards": step_s / (mean_passes * forward_s), "state_copies": trainer.state_copies()}
        if trainer.projects:
            projection_s = median_time(lambda i: trainer.project(i, fresh), max(1, args.steps // 2), device, memory)
            row["projection_s"] = projection_s
            row["projection_overhead"] = projection_s / (trainer.projection_passes() * forward_s)
            step_s += projection_s / hp.projection_interval  # amortised over the interval
    row.update({"steps_per_s": 1 / step_s, "peak_memory_gb": memory.peak_gb, "avg_memory_gb": memory.avg_gb,
                "inference_peak_gb": inference.peak_gb, "hardware": hardware_name(device)})
    return row


def main(args: argparse.Namespace) -> None:
    check_model_name(args.model)
    args.set = parse_set_args(args.set)
    used: set[str] = set()
    for m in args.methods:  # every key and value checked here, before a child process loads a model
        hp = (ReferenceMeZO if m == REFERENCE else METHODS.get(m)).Hparams()
        sets = hparam_sets(hp, args.set)
        apply_overrides([hp], sets)
        validate(hp)
        used |= set(sets)
    unknown = sorted(args.set.keys() - used)
    if unknown:
        raise BenchmarkError(f"--set {unknown[0]}: none of the measured methods has this hyperparameter")
    device = resolve_device(args.device)
    args.dtype = resolve_precision(args.dtype, device).name  # `auto` decided once, here: every row runs the same
    started = time.time()
    results: dict[str, dict] = {}
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for m in args.methods:
            results[m] = pool.apply(measure, (m, args))
    base = results.get("mezo")
    if base:
        for r in results.values():
            r["throughput_vs_mezo"] = r["steps_per_s"] / base["steps_per_s"]
            r["peak_vs_mezo"] = r["peak_memory_gb"] / base["peak_memory_gb"]
    if base and REFERENCE in results:
        base["speedup_vs_reference"] = results[REFERENCE]["step_s"] / base["step_s"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    sets = "".join(f" | {k}={v}" for k, v in args.set.items())
    print(f"model {args.model} | {hardware_name(device)} | {args.dtype}{sets} | batch {args.batch_size} | "
          f"median of {args.steps} steps after {WARMUP} warm-up | {time.time() - started:.0f}s")
    print(f"{'method':16s} {'step s':>7s} {'fwd s':>7s} {'passes':>6s} {'step/(p*fwd)':>12s} {'steps/s':>8s} "
          f"{'vs mezo':>7s} {'peak GB':>8s} {'/mezo':>6s} {'avg GB':>7s} {'infer GB':>8s} {'proj ovh':>8s} {'state':>6s}")
    for m, r in results.items():
        print(f"{m:16s} {r['step_s']:7.3f} {r['forward_s']:7.3f} {r['forward_passes']:6g} "
              f"{r['step_over_forwards']:12.2f} {r['steps_per_s']:8.3f} {r.get('throughput_vs_mezo', 0):7.2f} "
              f"{r['peak_memory_gb']:8.2f} {r.get('peak_vs_mezo', float('nan')):6.2f} {r['avg_memory_gb']:7.2f} "
              f"{r['inference_peak_gb']:8.2f} "
              f"{r.get('projection_overhead', float('nan')):8.2f} {r['state_copies']:6.3f}")
    if base and "speedup_vs_reference" in base:
        print(f"mezo speedup_vs_reference: {base['speedup_vs_reference']:.2f}")
