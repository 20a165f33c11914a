"""Mid-run checkpoints: what a killed or interrupted run resumes from, exactly.

A run writes one at every evaluation (`checkpoint=auto`; first-order full fine-tuning only when
asked, `checkpoint=eval`, its size said; `checkpoint=off` never) and when Ctrl-C stops it between steps, into
`checkpoint_root()/RUN_ID/`:
- `seed_log.jsonl` (methods that replay, ZO): the trajectory so far (benchmark/seedlog.py);
- `state.pt`: the log's header, the loop's `Progress` (step, best dev and its step, forwards, data
  batches drawn, training seconds, losses, per-step memory peaks), every RNG state (torch CPU and
  CUDA, Python's), the method's `state_dict` (first-order: trained weights and optimizer; ZO: only
  what no record rebuilds), and for first-order methods the best-on-dev weights when they are not
  the current ones.
Each file is replaced atomically, the log before the state, so a kill leaves a consistent pair: the
state names its step and a log may only run ahead of it. The directory is removed once the run
finishes (the seed log is then an MLflow artifact of the run). While a run's process lives it holds
`lock` there (`RunLock`), so a second process cannot resume it and write the same checkpoint.
"""
from __future__ import annotations

import fcntl
import io
import math
import os
import random
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark import seedlog
from benchmark.core.errors import BenchmarkError, first_line
from methods.registry import METHODS

STATE = "state.pt"
LOCK = "lock"


def checkpoint_root() -> Path:
    """Where checkpoints live (BENCHMARK_CHECKPOINTS; a shared path lets a run resume on another machine)."""
    return Path(os.environ.get("BENCHMARK_CHECKPOINTS", Path("runs") / "checkpoints"))


def checkpoint_dir(run_id: str) -> Path:
    return checkpoint_root() / run_id


@dataclass
class Progress:
    """Where the training loop stands between two steps: with the weights, all it needs to go on."""

    step: int = 0
    best_dev: float = math.nan
    best_step: int = 0
    forwards: int = 0
    batches: int = 0  # training batches drawn so far: the position in the data order
    train_s: float = 0.0
    wall_s: float = 0.0  # the run's wall time so far, evaluation and loading included
    resume_s: float = 0.0  # seconds spent rebuilding the state on resuming (replay, RNG, data order)
    losses: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)  # the steps' memory peaks (GB)
    log: list[dict[str, Any]] = field(default_factory=list)  # seed log entries (methods that replay)


@dataclass
class Snapshot:
    progress: Progress
    rng: dict[str, Any]
    method: dict[str, Any]
    best: Any = None  # a method that does not replay: its best-on-dev checkpoint, when not the current weights
    header: dict[str, Any] = field(default_factory=dict)  # the run's identity (the seed log's header)


def capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: Path, snapshot: Snapshot) -> int:
    """Write the snapshot (the log first, then the state, each atomically); returns the bytes written."""
    written = 0
    progress = asdict(snapshot.progress)
    log = progress.pop("log")
    if log:  # methods that replay
        written += seedlog.SeedLog(snapshot.header, log).write(directory / seedlog.FILE)
    buffer = io.BytesIO()
    torch.save({"header": snapshot.header, "progress": progress, "rng": snapshot.rng, "method": snapshot.method,
                "best": snapshot.best}, buffer)
    seedlog.write_atomic(directory / STATE, buffer.getvalue())
    return written + buffer.tell()


def exists(run_id: str) -> bool:
    return (checkpoint_dir(run_id) / STATE).is_file()


def load(run_id: str) -> Snapshot:
    """The run's last checkpoint, checked: one line naming what is wrong, before any work."""
    directory = checkpoint_dir(run_id)
    if not (directory / STATE).is_file():
        raise BenchmarkError(f"--resume {run_id}: no checkpoint in {directory} (the run wrote none, finished, or "
                             "checkpoints live elsewhere: BENCHMARK_CHECKPOINTS)")
    try:
        state = torch.load(directory / STATE, weights_only=True)
        progress = Progress(**state["progress"])
    except Exception as exc:
        raise BenchmarkError(f"--resume {run_id}: {directory / STATE} is unreadable "
                             f"({first_line(exc)[:120]})") from None
    snapshot = Snapshot(progress, state["rng"], state["method"], state["best"], state["header"])
    if METHODS.get(snapshot.header["method"]).replays:  # its weights are the log replayed: no log, no resume
        if not (directory / seedlog.FILE).is_file():
            raise BenchmarkError(f"--resume {run_id}: {directory / seedlog.FILE} is missing")
        log = seedlog.read(directory / seedlog.FILE, f"run {run_id}")
        if log.header != snapshot.header:
            raise BenchmarkError(f"--resume {run_id}: the seed log's header differs from the checkpoint's")
        steps = log.steps()
        if len(steps) < progress.step:
            raise BenchmarkError(f"--resume {run_id}: the seed log ends at step {len(steps)}, the checkpoint is at "
                                 f"step {progress.step} (truncated)")
        progress.log = [e for e in log.entries if e.get("step", e.get("eval", 0)) <= progress.step]
    return snapshot


def remove(run_id: str) -> None:
    shutil.rmtree(checkpoint_dir(run_id), ignore_errors=True)


class RunLock:
    """An exclusive `flock` on the run's `lock` file, held by the process that runs it for as long as it runs.
    The kernel drops it when that process dies (kill -9 included), so a dead run resumes and a live one is
    refused in one line. On a checkpoint directory shared over a network file system it holds as far as
    that file system honours `flock`."""

    def __init__(self, run_id: str) -> None:
        self.directory = checkpoint_dir(run_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.file = open(self.directory / LOCK, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise BenchmarkError(f"--resume {run_id}: the run is still going (process {holder}); stop it first "
                                 "(Ctrl-C keeps its checkpoint), then resume") from None
        self.file.truncate(0)
        self.file.write(f"{socket.gethostname()}:{os.getpid()}")
        self.file.flush()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.file.close()  # releases the lock
        if not (self.directory / STATE).is_file():  # no checkpoint to resume from: leave no directory behind
            remove(self.directory.name)
