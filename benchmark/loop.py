"""The training loop, top to bottom: a method on a model, one step per fresh batch, an evaluation every
`eval_every` steps that keeps the best on dev, and the test scored on the best.

The loop knows nothing of MLflow or files: metrics leave through `on_metrics`, checkpoints through
`save`, and a method that replays records its trajectory through one hook (`seedlog.Trajectory`).
`benchmark.runner` wraps it with the tracking contract; `benchmark replay` reuses its pieces.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from benchmark.checkpoint import Progress, Snapshot, capture_rng, restore_rng
from benchmark.config import RunConfig
from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.measure import LayerDrift, MemoryMonitor, Stopwatch
from benchmark.models import LoadedModel
from benchmark.scoring import BatchLoss, Encoder, evaluate
from benchmark.seedlog import Trajectory
from methods.base import LossFn, lr_schedule
from methods.registry import METHODS
from tasks.base import Splits

OnMetrics = Callable[[dict[str, float], int], None]


class Stopped(BenchmarkError):
    """A run ended early on purpose (pruned, diverged); MLflow records it as KILLED with `reason`."""

    reason = "stopped"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.reason


class Diverged(Stopped):
    """The training loss stopped being a finite number."""

    reason = "nan"


@dataclass
class RunResult:
    dev_best: float
    best_step: int
    test: float
    test_extra: dict[str, float]  # generation: test/exact_match
    steps_per_s: float
    peak_memory_gb: float
    avg_memory_gb: float
    train_hours: float
    forward_passes: int
    losses: list[float] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # the seed log's entries (methods that replay)
    resume_s: float = 0.0  # a resumed run: seconds its resumes spent rebuilding the state (replay, RNG, data order)
    run_id: str | None = None

    def summary_metrics(self) -> dict[str, float]:
        return {
            names.DEV_BEST: self.dev_best, names.DEV_BEST_STEP: self.best_step, names.TEST_SCORE: self.test,
            names.STEPS_PER_S: self.steps_per_s, names.PEAK_MEMORY: self.peak_memory_gb,
            names.AVG_MEMORY: self.avg_memory_gb, names.TRAIN_HOURS: self.train_hours,
            names.FORWARD_PASSES: self.forward_passes,
            **{names.TEST_PREFIX + k: v for k, v in self.test_extra.items()},
        }


def batch_indices(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless fixed-size batches over a stream of per-epoch permutations (seeded)."""
    rng = random.Random(seed)
    stream: list[int] = []
    while True:
        while len(stream) < batch_size:
            epoch = list(range(n))
            rng.shuffle(epoch)
            stream.extend(epoch)
        yield stream[:batch_size]
        del stream[:batch_size]


def build_method(cfg: RunConfig, hp: Any, model: torch.nn.Module) -> Any:
    """The run's method on the model, as every run and replay builds it (LoRA's A comes from the global RNG)."""
    torch.manual_seed(cfg.seed)
    return METHODS.get(cfg.method)(hp, model, lr_schedule(cfg.lr_schedule, cfg.steps), cfg.seed)


def replay_log(method: Any, entries: list[dict[str, Any]], best_step: int) -> Any:
    """Redo the logged steps on a freshly built method; returns its checkpoint at `best_step`, taken where
    the run took it (after that step's update)."""
    best = method.checkpoint() if best_step == 0 else None
    for entry in entries:
        if "step" in entry:
            method.replay(entry["step"] - 1, entry)
            if entry["step"] == best_step:
                best = method.checkpoint()
    return best


def encoder_for(cfg: RunConfig, loaded: LoadedModel, device: torch.device) -> Encoder:
    return Encoder(loaded.tokenizer, cfg.max_length, device, masked=loaded.kind == "masked")


def scorer(cfg: RunConfig, model: torch.nn.Module, encoder: Encoder, generation: bool) -> Callable[[list], dict]:
    """examples -> {"score": ..., extra metrics}, for the model as it is when called (in eval mode)."""

    def score(examples: list) -> dict[str, float]:
        model.eval()
        return evaluate(model, encoder, examples, cfg.eval_batch_size, generation)

    return score


def checkpoints(cfg: RunConfig, method: Any, model: torch.nn.Module) -> bool:
    """Whether this run writes checkpoints: `auto` skips first-order runs that train most of the weights (full
    fine-tuning: weights and two AdamW moments each time), whose checkpoint is three times the model."""
    if cfg.checkpoint != "auto":
        return cfg.checkpoint == "eval"
    if not method.first_order:
        return True
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trained <= sum(p.numel() for p in model.parameters()) // 2


def rebuild(method: Any, resume: Snapshot, batches: Iterator[list[int]]) -> Any:
    """Bring a freshly built method, the RNGs and the data order to a checkpoint's state; returns the best-on-dev
    checkpoint. ZO methods replay their log onto the base weights (`replay_log`)."""
    began = time.perf_counter()
    state = resume.progress
    best = replay_log(method, state.log, state.best_step) if method.replays else resume.best
    method.load_state_dict(resume.method)
    if best is None:  # the best weights are the current ones (not saved twice)
        best = method.checkpoint()
    restore_rng(resume.rng)
    for _ in range(state.batches):  # the data order's position
        next(batches)
    state.resume_s += time.perf_counter() - began
    return best


class Loop:
    """One run's training between two steps: the method, the data order, the `Progress` a checkpoint
    holds, and the best-on-dev weights."""

    def __init__(self, cfg: RunConfig, hp: Any, loaded: LoadedModel, splits: Splits, device: torch.device,
                 generation: bool, save: Callable[[Snapshot], None] | None) -> None:
        self.cfg, self.splits, self.device, self.generation, self.model = cfg, splits, device, generation, loaded.model
        self.method = build_method(cfg, hp, self.model)
        self.encoder = encoder_for(cfg, loaded, device)
        self.score = scorer(cfg, self.model, self.encoder, generation)
        self.save = save if save is not None and self.method.trains and checkpoints(cfg, self.method, self.model) else None
        self.drift = LayerDrift(self.model) if cfg.log_drift else None
        self.batches = batch_indices(len(splits.train), cfg.batch_size, cfg.seed)
        self.watch = Stopwatch(device)

    def begin(self, resume: Snapshot | None, on_metrics: OnMetrics) -> None:
        """A fresh run scores dev at step 0 (the first best); a resumed one is rebuilt to its checkpoint."""
        if resume is None:
            self.state = Progress()
            self.trajectory = Trajectory(self.method, self.state.log)
            self.state.best_dev, self.best = self.score(self.splits.dev)["score"], self.method.checkpoint()
            self.trajectory.evaluation(0, self.state.best_dev, True)
            on_metrics({names.DEV_SCORE: self.state.best_dev, **self.diagnostics()}, 0)
        else:
            self.state, self.best = resume.progress, rebuild(self.method, resume, self.batches)
            self.trajectory = Trajectory(self.method, self.state.log)
        self.watch.total_s = self.state.train_s

    def diagnostics(self) -> dict[str, float]:
        return {**self.method.diagnostics(), **(self.drift.metrics() if self.drift else {})}

    def fresh(self) -> LossFn:
        """The next training batch, collated, as a loss closure (DiZO's projection asks for more)."""
        self.state.batches += 1
        batch = self.encoder.collate([self.splits.train[i] for i in next(self.batches)])
        return BatchLoss(self.model, batch, self.generation)

    def due(self, done: int) -> bool:
        return done % self.cfg.eval_every == 0 or done == self.cfg.steps

    def step(self, step: int, memory: MemoryMonitor) -> dict[str, float]:
        """Training step `step` and, when due, an evaluation; returns the step's metrics."""
        self.model.train(self.method.first_order)  # dropout on for first-order only
        loss_fn = self.fresh()
        with self.watch:
            out = self.method.step(step, loss_fn, self.fresh)
        if not math.isfinite(out.loss):
            raise Diverged(f"training loss became {out.loss} at step {step + 1}")
        state = self.state
        state.step = done = step + 1
        state.losses.append(out.loss)
        state.forwards += out.forward_passes
        self.trajectory.step(done, out.record)
        metrics = {names.TRAIN_LOSS: out.loss, names.MEM_ALLOCATED: memory.end_step(), **out.metrics}
        return {**metrics, **self.evaluate(done)} if self.due(done) else metrics

    def evaluate(self, done: int) -> dict[str, float]:
        """Score dev; a new best keeps the method's checkpoint."""
        dev = self.score(self.splits.dev)["score"]
        metrics = {names.DEV_SCORE: dev, **self.diagnostics()}
        improved = dev > self.state.best_dev
        if improved:
            self.state.best_dev, self.state.best_step, self.best = dev, done, self.method.checkpoint()
        self.trajectory.evaluation(done, dev, improved)
        return metrics

    def checkpoint(self) -> None:
        """Hand `save` the state between two steps (every evaluation, and a Ctrl-C's stop)."""
        if self.save is None:
            return
        self.state.train_s = self.watch.total_s
        current = self.method.replays or self.state.best_step == self.state.step
        self.save(Snapshot(self.state, capture_rng(), self.method.state_dict(), None if current else self.best))

    def result(self, memory: MemoryMonitor) -> RunResult:
        """Restore the best-on-dev weights and score the test split on them."""
        self.method.restore(self.best)
        test = self.score(self.splits.test)
        devices = torch.cuda.device_count() if self.device.type == "cuda" else 1
        state, train_s = self.state, self.watch.total_s
        return RunResult(
            dev_best=state.best_dev, best_step=state.best_step, test=test.pop("score"), test_extra=test,
            steps_per_s=self.cfg.steps / train_s if train_s else float("nan"),
            peak_memory_gb=memory.peak_gb, avg_memory_gb=memory.avg_gb, train_hours=devices * train_s / 3600,
            forward_passes=state.forwards, losses=state.losses, log=state.log, resume_s=state.resume_s,
        )


def train(cfg: RunConfig, hp: Any, loaded: LoadedModel, splits: Splits, device: torch.device,
          on_metrics: OnMetrics = lambda m, s: None, progress: bool = True, generation: bool = False,
          resume: Snapshot | None = None, save: Callable[[Snapshot], None] | None = None) -> RunResult:
    """The loop. `generation`: train on the answer's tokens, score by greedy decoding + F1. `resume`: go on
    from a checkpoint (the model as loaded, the log replayed onto it); `save` receives a checkpoint at every
    evaluation and when `on_metrics` stops the run with a Ctrl-C (between steps, the state whole)."""
    loop = Loop(cfg, hp, loaded, splits, device, generation, save)
    loop.begin(resume, on_metrics)
    bar = tqdm(total=cfg.steps, initial=loop.state.step, desc=f"{cfg.method} {cfg.task}", unit="step",
               disable=not progress or cfg.steps == 0, mininterval=1.0, dynamic_ncols=True)
    with MemoryMonitor(device) as memory:
        memory.step_peaks = loop.state.memory
        for step in range(loop.state.step, cfg.steps):
            metrics = loop.step(step, memory)
            try:
                on_metrics(metrics, step + 1)
            except KeyboardInterrupt:  # a Ctrl-C between steps: keep what this run has done
                loop.checkpoint()
                raise
            if loop.due(step + 1):
                loop.checkpoint()
            bar.set_postfix(loss=f"{metrics[names.TRAIN_LOSS]:.4f}", dev=f"{loop.state.best_dev:.3f}", refresh=False)
            bar.update()
    bar.close()
    return loop.result(memory)
