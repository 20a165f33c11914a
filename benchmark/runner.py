"""One recorded run, top to bottom (`run`): prepare (data, checkpoint, settings, store), load (device,
dtype, model, identity), open the MLflow run, train into it (`benchmark.loop`), close.

The loop knows nothing of MLflow; `run` wraps it with the tracking contract, so a crash still leaves a
FAILED run behind and a Ctrl-C a KILLED one with its checkpoint. `build_run` turns names and overrides
into validated configs before any of it.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from benchmark import checkpoint, export, seedlog, tracking
from benchmark.checkpoint import Snapshot
from benchmark.config import RunConfig
from benchmark.core import names
from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import apply_overrides, flatten, validate
from benchmark.loop import OnMetrics, RunResult, Stopped, train
from benchmark.measure import cpu_name, device_name
from benchmark.models import LoadedModel, check_model_name, load_model, model_kind, resolve_device, resolve_precision
from methods.registry import METHODS
from methods.zo import generators
from methods.zo.generators import AUTO
from tasks.base import Splits, Task
from tasks.registry import TASKS
from tasks.sampling import check_k, sample_splits

WARN_BYTES = 100 * 2**20  # a checkpoint this large is said once (full fine-tuning's)


def failure_reason(exc: BaseException) -> str:
    """A short, stable name for why a run failed: `oom` for out-of-memory, else the exception type."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "oom"
    return type(exc).__name__


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


@dataclass
class Prepared:
    """A run resolved and checked: its data, the checkpoint it resumes from, its settings, and the store
    reachable. Nothing is recorded yet."""

    task: Task
    template: str
    splits: Splits
    settings: dict[str, Any]
    experiment_id: str
    resume: str | None
    snapshot: Snapshot | None


def prepare(cfg: RunConfig, hp: Any, resume: str | None) -> Prepared:
    """Data errors first, then the checkpoint against the command, then the store: one line before any work."""
    task, template, splits = sample(cfg)  # nothing is recorded for a run that cannot start
    began = time.time()
    snapshot = checkpoint.load(resume) if resume else None
    settings = flatten(cfg, hp)
    if snapshot is not None:
        snapshot.progress.resume_s += time.time() - began  # reading the checkpoint: part of what resuming costs
        check_settings(resume, snapshot.header["config"], settings)  # before the store is touched
    experiment_id = tracking.connect(cfg.experiment)
    if snapshot is not None:
        tracking.check_run(resume, experiment_id)
    return Prepared(task, template, splits, settings, experiment_id, resume, snapshot)


@dataclass
class Loaded:
    """What the run runs on: device, precision, model, packages, and its identity (the seed log's header)."""

    device: torch.device
    precision: Any
    model: LoadedModel
    packages: str
    head: dict[str, Any]


def load(cfg: RunConfig, hp: Any, prep: Prepared) -> Loaded:
    """Resolve device, dtype and generator (a resumed run keeps what it resolved to) and load the model; a
    resumed run must be on what it started on (`check_identity`) and keeps its identity."""
    snapshot = prep.snapshot
    device = resolve_device(cfg.device)
    precision = resolve_precision(snapshot.header["dtype"] if snapshot and cfg.dtype == "auto" else cfg.dtype, device)
    generator = resolve_generator(hp, snapshot.header if snapshot else None, device)
    loaded = load_model(cfg.model, device, precision.weights)
    packages = tracking.package_versions()
    base = seedlog.weights_sha256(loaded.model) if METHODS.get(cfg.method).trains else ""
    head = seedlog.header(cfg.method, cfg.model, base, precision.name, device.type, packages, tracking.git_commit(),
                          prep.settings, prep.task.file_sha256 or "", generator)
    if snapshot is not None:
        check_identity(prep.resume, snapshot.header, head)
        head = snapshot.header
    return Loaded(device, precision, loaded, packages, head)


class Recorder:
    """The open MLflow run: step metrics in batches, the wall clock, and `train`'s `save` (MLflow first, then
    the checkpoint: a checkpoint at step k never runs ahead of the metrics logged)."""

    def __init__(self, run_id: str, buffer: tracking.MetricBuffer, head: dict[str, Any], prior_s: float) -> None:
        self.run_id, self.buffer, self.head, self.prior_s = run_id, buffer, head, prior_s
        self.directory, self.warned, self.started = checkpoint.checkpoint_dir(run_id), False, time.time()
        self.on_save: Callable[[str], None] | None = None  # told the run id after each checkpoint is written

    def wall_s(self) -> float:
        """The run's wall time, its earlier lives (before a resume) included."""
        return self.prior_s + time.time() - self.started

    def save(self, snap: Snapshot) -> None:
        self.buffer.flush()
        snap.header, snap.progress.wall_s = self.head, self.wall_s()
        size = checkpoint.save(self.directory, snap)
        if size > WARN_BYTES and not self.warned:
            self.warned = True
            print(f"checkpoint: {size / 2**30:.1f} GiB at each evaluation in {self.directory}", file=sys.stderr)
        if self.on_save is not None:
            self.on_save(self.run_id)


def open_run(cfg: RunConfig, prep: Prepared, run: Loaded, parent_run_id: str | None,
             extra_tags: dict[str, str] | None) -> Recorder:
    """Start the MLflow run with the naming contract's tags and params, or reopen the run it resumes."""
    tags = {"method": cfg.method, "task": prep.task.name, "model": cfg.model, "device": device_name(run.device), "cpu": cpu_name(),
            "git_commit": tracking.git_commit(), "engine": tracking.engine_version(), "packages": run.packages, "dtype": run.precision.name,
            "template": prep.template, "metric": prep.task.metric, **(extra_tags or {})}
    if prep.snapshot is not None:
        progress = prep.snapshot.progress
        return Recorder(prep.resume, tracking.resume_run(prep.resume, tags, progress.step), run.head, progress.wall_s)
    splits = prep.splits
    params = {**prep.settings, "n_train": len(splits.train), "n_dev": len(splits.dev), "n_test": len(splits.test),
              **({"task_sha256": prep.task.file_sha256} if prep.task.file_sha256 else {})}
    run_id = tracking.start_run(prep.experiment_id, f"{cfg.method}-{cfg.task}-s{cfg.seed}", tags, params,
                                parent_run_id).info.run_id
    return Recorder(run_id, tracking.MetricBuffer(run_id), run.head, 0.0)


def train_recorded(cfg: RunConfig, hp: Any, prep: Prepared, run: Loaded, recorder: Recorder,
                   on_metrics: OnMetrics | None, progress: bool) -> RunResult:
    """`train` into the open run; a run that does not finish is ended with the status that says why
    (pruned or diverged: KILLED and no checkpoint; Ctrl-C: KILLED, its checkpoint kept; an error: FAILED)."""
    def record(metrics: dict[str, float], step: int) -> None:
        recorder.buffer(metrics, step)
        if on_metrics is not None:
            on_metrics(metrics, step)

    try:
        with run.precision.compute(run.device):
            return train(cfg, hp, run.model, prep.splits, run.device, record, progress, prep.task.generation,
                         prep.snapshot, recorder.save)
    except BaseException as exc:
        recorder.buffer.flush()
        if isinstance(exc, Stopped):
            checkpoint.remove(recorder.run_id)  # nothing to go on with
            tracking.end_run("KILLED", reason=exc.reason)
        elif isinstance(exc, KeyboardInterrupt):
            tracking.end_run("KILLED", reason="interrupted")
        else:
            tracking.end_run("FAILED", error=failure_reason(exc))
        raise


def close(cfg: RunConfig, prep: Prepared, run: Loaded, recorder: Recorder, result: RunResult,
          save_to: Path | None) -> RunResult:
    """Summary metrics, the seed log as an artifact, the tested weights where asked; the run FINISHED and its
    checkpoint gone."""
    recorder.buffer.flush()
    summary = {**result.summary_metrics(), names.WALL_S: recorder.wall_s()}
    if prep.snapshot is not None:
        summary[names.RESUME_S] = result.resume_s
    if result.log:
        log = seedlog.SeedLog(run.head, result.log, {"end": cfg.steps, "best_step": result.best_step, "test": result.test})
        summary[names.SEED_LOG_BYTES] = tracking.log_text_artifact(log.text(), seedlog.FILE)
    if save_to is not None:
        export.save_weights(run.model, save_to)
    tracking.log_metrics(summary)
    tracking.end_run()
    checkpoint.remove(recorder.run_id)
    result.run_id = recorder.run_id
    return result


def run(cfg: RunConfig, hp: Any, progress: bool = True, parent_run_id: str | None = None,
        extra_tags: dict[str, str] | None = None, on_metrics: OnMetrics | None = None,
        on_start: Callable[[str], None] | None = None, resume: str | None = None,
        save_to: Path | None = None, on_checkpoint: Callable[[str], None] | None = None) -> RunResult:
    """Train, evaluate and record one run in MLflow. Inputs are assumed validated (`build_run`).
    `on_start` gets the MLflow run id once the run exists; `on_metrics` sees every step's metrics after they
    are logged and may raise `Stopped` (pruning). `resume`: an MLflow run id to continue from its checkpoint,
    into the same run; refused while that run's process lives (`checkpoint.RunLock`). `save_to`: a
    directory for the tested weights (`export.save_weights`). `on_checkpoint` gets the run id after each
    checkpoint is written (a study carries it with its journal: `benchmark.study.carry`)."""
    with contextlib.ExitStack() as held:
        if resume:
            held.enter_context(checkpoint.RunLock(resume))
        prep = prepare(cfg, hp, resume)
        loaded = load(cfg, hp, prep)
        recorder = open_run(cfg, prep, loaded, parent_run_id, extra_tags)
        recorder.on_save = on_checkpoint
        if not resume:
            held.enter_context(checkpoint.RunLock(recorder.run_id))
        if on_start is not None:
            on_start(recorder.run_id)
        result = train_recorded(cfg, hp, prep, loaded, recorder, on_metrics, progress)
        return close(cfg, prep, loaded, recorder, result, save_to)


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
