"""One training run, top to bottom: data, model, method, train loop, best-on-dev, test, record.

`train` is the loop and knows nothing of MLflow (it reports metrics through a callback);
`run` wraps it with the tracking contract so a crash still leaves a FAILED run behind.
"""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from benchmark import checkpoint, export, seedlog, tracking
from benchmark.checkpoint import Progress, Snapshot, capture_rng, restore_rng
from benchmark.config import RunConfig
from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import apply_overrides, flatten, validate
from benchmark.measure import LayerDrift, MemoryMonitor, Stopwatch, device_name
from benchmark.models import LoadedModel, check_model_name, load_model, model_kind, resolve_device, resolve_precision
from benchmark.scoring import BatchLoss, Encoder, evaluate
from methods.base import LossFn, lr_schedule
from methods.registry import METHODS
from methods.zo import generators
from methods.zo.generators import AUTO
from tasks.base import Splits, Task
from tasks.registry import TASKS
from tasks.sampling import check_k, sample_splits

OnMetrics = Callable[[dict[str, float], int], None]
WARN_BYTES = 100 * 2**20  # a checkpoint this large is said once (full fine-tuning's)


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


def train(cfg: RunConfig, hp: Any, loaded: LoadedModel, splits: Splits, device: torch.device,
          on_metrics: OnMetrics = lambda m, s: None, progress: bool = True, generation: bool = False,
          resume: Snapshot | None = None, save: Callable[[Snapshot], None] | None = None) -> RunResult:
    """The loop. `generation`: train on the answer's tokens, score by greedy decoding + F1. `resume`: go on
    from a checkpoint (the model as loaded, the log replayed onto it); `save` receives a checkpoint at every
    evaluation and when `on_metrics` stops the run with a Ctrl-C (between steps, the state whole)."""
    model = loaded.model
    method = build_method(cfg, hp, model)
    steps = cfg.steps  # 0 for a method that does not train (build_run)
    encoder = encoder_for(cfg, loaded, device)
    score = scorer(cfg, model, encoder, generation)
    save = save if save is not None and method.trains and checkpoints(cfg, method, model) else None
    drift = LayerDrift(model) if cfg.log_drift else None
    batches = batch_indices(len(splits.train), cfg.batch_size, cfg.seed)
    if resume is None:
        state = Progress()
        state.best_dev, best = score(splits.dev)["score"], method.checkpoint()
        if method.replays:
            state.log.append({"eval": 0, "dev": state.best_dev, "best": True})
        on_metrics({names.DEV_SCORE: state.best_dev, **method.diagnostics(), **(drift.metrics() if drift else {})}, 0)
    else:
        state, best = resume.progress, rebuild(method, resume, batches)

    def fresh() -> LossFn:
        """The next training batch, collated, as a loss closure (DiZO's projection asks for more)."""
        state.batches += 1
        batch = encoder.collate([splits.train[i] for i in next(batches)])
        return BatchLoss(model, batch, generation)

    watch = Stopwatch(device)
    watch.total_s = state.train_s

    def snapshot() -> Snapshot:
        state.train_s = watch.total_s
        current = method.replays or state.best_step == state.step
        return Snapshot(state, capture_rng(), method.state_dict(), None if current else best)

    bar = tqdm(total=steps, initial=state.step, desc=f"{cfg.method} {cfg.task}", unit="step",
               disable=not progress or steps == 0, mininterval=1.0, dynamic_ncols=True)
    with MemoryMonitor(device) as memory:
        memory.step_peaks = state.memory
        for step in range(state.step, steps):
            model.train(method.first_order)  # dropout on for first-order only
            loss_fn = fresh()
            with watch:
                out = method.step(step, loss_fn, fresh)
            if not math.isfinite(out.loss):
                raise Diverged(f"training loss became {out.loss} at step {step + 1}")
            state.step = done = step + 1
            state.losses.append(out.loss)
            state.forwards += out.forward_passes
            if method.replays:
                state.log.append({"step": done, **out.record})
            metrics = {names.TRAIN_LOSS: out.loss, names.MEM_ALLOCATED: memory.end_step(), **out.metrics}
            evaluation = done % cfg.eval_every == 0 or done == steps
            if evaluation:
                metrics[names.DEV_SCORE] = dev = score(splits.dev)["score"]
                metrics.update({**method.diagnostics(), **(drift.metrics() if drift else {})})
                improved = dev > state.best_dev
                if improved:
                    state.best_dev, state.best_step, best = dev, done, method.checkpoint()
                if method.replays:
                    state.log.append({"eval": done, "dev": dev, "best": improved})
            try:
                on_metrics(metrics, done)
            except KeyboardInterrupt:  # a Ctrl-C between steps: keep what this run has done
                if save is not None:
                    save(snapshot())
                raise
            if evaluation and save is not None:
                save(snapshot())
            bar.set_postfix(loss=f"{out.loss:.4f}", dev=f"{state.best_dev:.3f}", refresh=False)
            bar.update()
    bar.close()
    method.restore(best)
    test = score(splits.test)
    devices = torch.cuda.device_count() if device.type == "cuda" else 1
    return RunResult(
        dev_best=state.best_dev, best_step=state.best_step, test=test.pop("score"), test_extra=test,
        steps_per_s=steps / watch.total_s if watch.total_s else float("nan"),
        peak_memory_gb=memory.peak_gb, avg_memory_gb=memory.avg_gb,
        train_hours=devices * watch.total_s / 3600, forward_passes=state.forwards, losses=state.losses,
        log=state.log, resume_s=state.resume_s,
    )


def sample(cfg: RunConfig) -> tuple[Task, str, Splits]:
    """The run's task, its template name for the model's kind, and its train/dev/test examples."""
    task = TASKS.get(cfg.task)
    template, prompt = task.template(model_kind(cfg.model), cfg.template)
    return task, template, sample_splits(task, prompt.render, cfg.seed, cfg.num_train, cfg.num_dev, cfg.num_test,
                                         cfg.k)


RESOLVED = ("dtype", "generator")  # settings whose `auto` is resolved on the machine: the header holds the outcome


def check_settings(run_id: str, had: dict[str, Any], now: dict[str, Any]) -> None:
    """The command is the run's: every setting and hyperparameter as the checkpoint has them (`RESOLVED`
    aside: `auto` is resolved on the machine; `check_identity` compares what it resolved to)."""
    differ = [f"{k}={had.get(k)!r} (this command: {v!r})" for k, v in now.items()
              if had.get(k) != v and k not in RESOLVED]
    if differ:
        raise BenchmarkError(f"--resume {run_id}: the run had " + ", ".join(differ[:4]))


def check_identity(run_id: str, had: dict[str, Any], now: dict[str, Any]) -> None:
    """The run resumes on what it ran on: resolved dtype, device type, base weights and a task file's content
    (method, model and the task's path are settings: `check_settings`). A version-1 checkpoint names no
    generator: it drew z with torch-normal."""
    if now.get("generator"):
        had = {**had, "generator": seedlog.generator_of(had)}
    for key, what in (("dtype", "dtype"), ("device", "device"), ("generator", "generator of z"),
                      ("base_sha256", "base weights (SHA-256)"), ("task_sha256", "task file (SHA-256)")):
        if key in had and had[key] != now[key]:  # checkpoints written before task files have no task_sha256
            raise BenchmarkError(f"--resume {run_id}: the checkpoint's {what} is {had[key] or '-'}, "
                                 f"this run's {now[key] or '-'}")


def resolve_generator(hp: Any, resumed: dict[str, Any] | None, device: torch.device) -> str:
    """A ZO method's generator of z, resolved here and set on `hp` ("" for a method without one): `auto`
    takes what a resumed run used (a version-1 checkpoint: torch-normal), else philox where it runs."""
    if not hasattr(hp, "generator"):
        return ""
    requested = seedlog.generator_of(resumed) if resumed is not None and hp.generator == AUTO else hp.generator
    hp.generator = generators.resolve(requested, device.type)
    return hp.generator


def run(cfg: RunConfig, hp: Any, progress: bool = True, parent_run_id: str | None = None,
        extra_tags: dict[str, str] | None = None, on_metrics: OnMetrics | None = None,
        on_start: Callable[[str], None] | None = None, resume: str | None = None,
        save_to: Path | None = None) -> RunResult:
    """Train, evaluate and record one run in MLflow. Inputs are assumed validated (see cli).
    `on_start` gets the MLflow run id once the run exists; `on_metrics` sees every step's metrics
    after they are logged and may raise `Stopped` (pruning). `resume`: an MLflow run id to continue from
    its checkpoint, into the same run. `save_to`: a directory for the tested weights (`export.save_weights`)."""
    task, template, splits = sample(cfg)  # data errors first: nothing is recorded for a run that cannot start
    began = time.time()
    snapshot = checkpoint.load(resume) if resume else None
    loading = time.time() - began  # reading the checkpoint: part of what resuming costs
    settings = flatten(cfg, hp)
    if snapshot is not None:
        check_settings(resume, snapshot.header["config"], settings)  # before the store is touched
    experiment_id = tracking.connect(cfg.experiment)
    if snapshot is not None:
        tracking.check_run(resume, experiment_id)
    device = resolve_device(cfg.device)
    precision = resolve_precision(snapshot.header["dtype"] if snapshot and cfg.dtype == "auto" else cfg.dtype, device)
    generator = resolve_generator(hp, snapshot.header if snapshot else None, device)
    loaded = load_model(cfg.model, device, precision.weights)
    packages = tracking.package_versions()
    base = seedlog.weights_sha256(loaded.model) if METHODS.get(cfg.method).trains else ""
    head = seedlog.header(cfg.method, cfg.model, base, precision.name, device.type, packages, tracking.git_commit(),
                          settings, task.file_sha256 or "", generator)
    if snapshot is not None:
        check_identity(resume, snapshot.header, head)
        head = snapshot.header  # the run's identity stays what it started with
        snapshot.progress.resume_s += loading
    tags = {"method": cfg.method, "task": task.name, "model": cfg.model, "device": device_name(device),
            "git_commit": tracking.git_commit(), "packages": packages, "dtype": precision.name,
            "template": template, "metric": task.metric, **(extra_tags or {})}
    if snapshot is not None:
        prior, run_id = snapshot.progress.wall_s, resume
        buffer = tracking.resume_run(run_id, tags, snapshot.progress.step)
    else:
        prior = 0.0
        params = {**settings, "n_train": len(splits.train), "n_dev": len(splits.dev), "n_test": len(splits.test),
                  **({"task_sha256": task.file_sha256} if task.file_sha256 else {})}
        run_id = tracking.start_run(experiment_id, f"{cfg.method}-{cfg.task}-s{cfg.seed}", tags, params,
                                    parent_run_id).info.run_id
        buffer = tracking.MetricBuffer(run_id)
    if on_start is not None:
        on_start(run_id)
    directory, warned = checkpoint.checkpoint_dir(run_id), False

    def record(metrics: dict[str, float], step: int) -> None:
        buffer(metrics, step)
        if on_metrics is not None:
            on_metrics(metrics, step)

    def save(snap: Snapshot) -> None:
        """MLflow first, then the checkpoint: a checkpoint at step k never runs ahead of the metrics logged."""
        nonlocal warned
        buffer.flush()
        snap.header, snap.progress.wall_s = head, prior + time.time() - started
        size = checkpoint.save(directory, snap)
        if size > WARN_BYTES and not warned:
            warned = True
            print(f"checkpoint: {size / 2**30:.1f} GiB at each evaluation in {directory}", file=sys.stderr)

    started = time.time()
    try:
        with precision.compute(device):
            result = train(cfg, hp, loaded, splits, device, record, progress, task.generation, snapshot, save)
    except BaseException as exc:
        buffer.flush()
        if isinstance(exc, Stopped):
            checkpoint.remove(run_id)  # pruned or diverged: nothing to go on with
            tracking.end_run("KILLED", reason=exc.reason)
        elif isinstance(exc, KeyboardInterrupt):
            tracking.end_run("KILLED", reason="interrupted")
        else:
            tracking.end_run("FAILED", error=failure_reason(exc))
        raise
    buffer.flush()
    summary = {**result.summary_metrics(), names.WALL_S: prior + time.time() - started}
    if snapshot is not None:
        summary[names.RESUME_S] = result.resume_s
    if result.log:
        log = seedlog.SeedLog(head, result.log, {"end": cfg.steps, "best_step": result.best_step, "test": result.test})
        summary[names.SEED_LOG_BYTES] = tracking.log_text_artifact(log.text(), seedlog.FILE)
    if save_to is not None:
        export.save_weights(loaded, save_to)
    tracking.log_metrics(summary)
    tracking.end_run()
    checkpoint.remove(run_id)
    result.run_id = run_id
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
