"""One training run, top to bottom: data, model, method, train loop, best-on-dev, test, record.

`train` is the loop and knows nothing of MLflow (it reports metrics through a callback);
`run` wraps it with the tracking contract so a crash still leaves a FAILED run behind.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from benchmark import tracking
from benchmark.config import RunConfig
from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import apply_overrides, flatten, validate
from benchmark.measure import LayerDrift, MemoryMonitor, Stopwatch, device_name
from benchmark.models import LoadedModel, check_model_name, load_model, model_kind, resolve_device, resolve_precision
from benchmark.scoring import BatchLoss, Encoder, evaluate
from methods.base import LossFn, lr_schedule
from methods.registry import METHODS
from tasks.base import Splits, Task
from tasks.registry import TASKS
from tasks.sampling import check_k, sample_splits

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


def failure_reason(exc: BaseException) -> str:
    """A short, stable name for why a run failed: `oom` for out-of-memory, else the exception type."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "oom"
    return type(exc).__name__


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


def train(cfg: RunConfig, hp: Any, loaded: LoadedModel, splits: Splits, device: torch.device,
          on_metrics: OnMetrics = lambda m, s: None, progress: bool = True, generation: bool = False) -> RunResult:
    """The loop. `generation`: train on the answer's tokens, score by greedy decoding + F1."""
    model = loaded.model
    torch.manual_seed(cfg.seed)
    method = METHODS.get(cfg.method)(hp, model, lr_schedule(cfg.lr_schedule, cfg.steps), cfg.seed)
    steps = cfg.steps  # 0 for a method that does not train (build_run)
    encoder = Encoder(loaded.tokenizer, cfg.max_length, device, masked=loaded.kind == "masked")

    def score(examples: list) -> dict[str, float]:
        model.eval()
        return evaluate(model, encoder, examples, cfg.eval_batch_size, generation)

    drift = LayerDrift(model) if cfg.log_drift else None
    best_dev, best_step, best = score(splits.dev)["score"], 0, method.checkpoint()
    on_metrics({names.DEV_SCORE: best_dev, **method.diagnostics(), **(drift.metrics() if drift else {})}, 0)
    batches = batch_indices(len(splits.train), cfg.batch_size, cfg.seed)

    def fresh() -> LossFn:
        """The next training batch, collated, as a loss closure (DiZO's projection asks for more)."""
        batch = encoder.collate([splits.train[i] for i in next(batches)])
        return BatchLoss(model, batch, generation)

    watch, losses, forwards = Stopwatch(device), [], 0
    bar = tqdm(total=steps, desc=f"{cfg.method} {cfg.task}", unit="step", disable=not progress or steps == 0,
               mininterval=1.0, dynamic_ncols=True)
    with MemoryMonitor(device) as memory:
        for step in range(steps):
            model.train(method.first_order)  # dropout on for first-order only
            loss_fn = fresh()
            with watch:
                out = method.step(step, loss_fn, fresh)
            if not math.isfinite(out.loss):
                raise Diverged(f"training loss became {out.loss} at step {step + 1}")
            losses.append(out.loss)
            forwards += out.forward_passes
            metrics = {names.TRAIN_LOSS: out.loss, names.MEM_ALLOCATED: memory.end_step(), **out.metrics}
            done = step + 1
            if done % cfg.eval_every == 0 or done == steps:
                metrics[names.DEV_SCORE] = dev = score(splits.dev)["score"]
                metrics.update({**method.diagnostics(), **(drift.metrics() if drift else {})})
                if dev > best_dev:
                    best_dev, best_step, best = dev, done, method.checkpoint()
            on_metrics(metrics, done)
            bar.set_postfix(loss=f"{out.loss:.4f}", dev=f"{best_dev:.3f}", refresh=False)
            bar.update()
    bar.close()
    method.restore(best)
    test = score(splits.test)
    devices = torch.cuda.device_count() if device.type == "cuda" else 1
    return RunResult(
        dev_best=best_dev, best_step=best_step, test=test.pop("score"), test_extra=test,
        steps_per_s=steps / watch.total_s if watch.total_s else float("nan"),
        peak_memory_gb=memory.peak_gb, avg_memory_gb=memory.avg_gb,
        train_hours=devices * watch.total_s / 3600, forward_passes=forwards, losses=losses,
    )


def sample(cfg: RunConfig) -> tuple[Task, str, Splits]:
    """The run's task, its template name for the model's kind, and its train/dev/test examples."""
    task = TASKS.get(cfg.task)
    template, prompt = task.template(model_kind(cfg.model), cfg.template)
    return task, template, sample_splits(task, prompt.render, cfg.seed, cfg.num_train, cfg.num_dev, cfg.num_test,
                                         cfg.k)


def run(cfg: RunConfig, hp: Any, progress: bool = True, parent_run_id: str | None = None,
        extra_tags: dict[str, str] | None = None, on_metrics: OnMetrics | None = None,
        on_start: Callable[[str], None] | None = None) -> RunResult:
    """Train, evaluate and record one run in MLflow. Inputs are assumed validated (see cli).
    `on_start` gets the MLflow run id once the run exists; `on_metrics` sees every step's metrics
    after they are logged and may raise `Stopped` (pruning)."""
    task, template, splits = sample(cfg)  # data errors first: nothing is recorded for a run that cannot start
    experiment_id = tracking.connect(cfg.experiment)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.dtype, device)
    loaded = load_model(cfg.model, device, precision.weights)
    tags = {"method": cfg.method, "task": cfg.task, "model": cfg.model, "device": device_name(device),
            "git_commit": tracking.git_commit(), "packages": tracking.package_versions(), "dtype": precision.name,
            "template": template, "metric": task.metric, **(extra_tags or {})}
    params = {**flatten(cfg, hp), "n_train": len(splits.train), "n_dev": len(splits.dev),
              "n_test": len(splits.test)}
    run_info = tracking.start_run(experiment_id, f"{cfg.method}-{cfg.task}-s{cfg.seed}", tags, params, parent_run_id)
    buffer = tracking.MetricBuffer(run_info.info.run_id)
    if on_start is not None:
        on_start(run_info.info.run_id)

    def record(metrics: dict[str, float], step: int) -> None:
        buffer(metrics, step)
        if on_metrics is not None:
            on_metrics(metrics, step)

    started = time.time()
    try:
        with precision.compute(device):
            result = train(cfg, hp, loaded, splits, device, record, progress, task.generation)
    except BaseException as exc:
        buffer.flush()
        if isinstance(exc, Stopped):
            tracking.end_run("KILLED", reason=exc.reason)
        elif isinstance(exc, KeyboardInterrupt):
            tracking.end_run("KILLED", reason="interrupted")
        else:
            tracking.end_run("FAILED", error=failure_reason(exc))
        raise
    buffer.flush()
    tracking.log_metrics({**result.summary_metrics(), names.WALL_S: time.time() - started})
    tracking.end_run()
    result.run_id = run_info.info.run_id
    return result


def build_run(method: str, task: str, sets: dict[str, str], **fields: Any) -> tuple[RunConfig, Any]:
    """Resolve names and overrides into validated configs; every user error surfaces here, before work.
    A method that does not train gets `steps=0`, so its record says what ran."""
    method_cls = METHODS.get(method)
    task_def: Task = TASKS.get(task)
    cfg = RunConfig(method=method, task=task, **{k: v for k, v in fields.items() if v is not None})
    hp = method_cls.Hparams()
    apply_overrides([cfg, hp], sets)
    validate(cfg)
    validate(hp)
    check_model_name(cfg.model)
    task_def.template(model_kind(cfg.model), cfg.template)
    check_k(task_def, cfg.k)
    resolve_device(cfg.device)
    if not method_cls.trains:
        cfg.steps = 0
    return cfg, hp
