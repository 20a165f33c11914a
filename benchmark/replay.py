"""`benchmark replay SOURCE`, top to bottom: a ZO run's tested weights rebuilt from the base model and
its seed log, saved, and test scored again.

SOURCE is an MLflow run id (its `seed_log.jsonl` artifact) or a seed log file: the log's header holds
everything the run was (method, model, config, dtype, device, base-weights hash), so a few kilobytes
stand for the fine-tuned model. The replay builds the method as the run did, redoes every logged step
(`Method.replay`: the same float operations on the same numbers), takes the best-on-dev checkpoint where
the run took it and restores it as the run did: on the same device and dtype the weights are the run's
bit for bit, and so is the test score (tests/test_resume.py).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark import export, seedlog
from benchmark.config import RunConfig
from benchmark.core.errors import BenchmarkError
from benchmark.core.settings import validate
from benchmark.core.store import client, tracking_uri
from benchmark.loop import build_method, encoder_for, replay_log, scorer
from benchmark.models import load_model, resolve_device, resolve_precision
from benchmark.runner import sample
from methods.registry import METHODS


@dataclass
class Replayed:
    log: seedlog.SeedLog
    steps: int
    seconds: float  # rebuilding the weights: the replay itself, loading and scoring aside
    test: float
    out: Path | None


def fetch(source: str, into: Path) -> tuple[Path, str]:
    """(the seed log's path, how to name it in errors): a file as given, or a run's artifact."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if Path(source).is_file():
        return Path(source), source
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise BenchmarkError(f"{source}: neither a seed log file nor a run in {uri} (no such store)")
    try:
        run = client().get_run(source)
    except Exception:
        raise BenchmarkError(f"{source}: neither a seed log file nor a run in {tracking_uri()}") from None
    names = {a.path for a in client().list_artifacts(source)}
    if seedlog.FILE not in names:
        raise BenchmarkError(f"run {source} ({run.data.tags.get('method', '?')}) has no {seedlog.FILE}: only finished "
                             "runs of methods that replay (ZO) have one")
    return Path(client().download_artifacts(source, seedlog.FILE, str(into))), f"run {source}"


def configs(log: seedlog.SeedLog) -> tuple[RunConfig, object]:
    """The run's settings and hyperparameters from the header's config, checked as a run checks them."""
    flat = dict(log.header["config"])
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    cfg = RunConfig(**{k: v for k, v in flat.items() if k in run_fields})
    hparams = METHODS.get(cfg.method).Hparams
    retired = getattr(hparams, "retired", ())  # placement settings an older log names, which change no number
    hp = hparams(**{k: v for k, v in flat.items() if k not in run_fields and k not in retired})
    if hasattr(hp, "generator"):
        hp.generator = seedlog.generator_of(log.header)  # what z was drawn with (version 1: torch-normal)
    validate(cfg)
    validate(hp)
    return cfg, hp


def replay(source: str, out: Path | None = None) -> Replayed:
    with tempfile.TemporaryDirectory() as tmp:
        path, origin = fetch(source, Path(tmp))
        log = seedlog.read(path, origin)
    head = log.header
    if log.end is None:
        raise BenchmarkError(f"{origin}: the log ends at step {len(log.steps())} with no end record: the run did not "
                             "finish (resume it: benchmark run ... --resume RUN_ID)")
    try:
        cfg, hp = configs(log)
    except TypeError as exc:
        raise BenchmarkError(f"{origin}: the header's config does not fit this harness ({exc})") from None
    task, _, splits = sample(cfg)
    if "task_sha256" in head and head["task_sha256"] != (task.file_sha256 or ""):  # logs written before: no key
        raise BenchmarkError(f"{origin}: task file {cfg.task} has changed since the run (SHA-256 "
                             f"{(task.file_sha256 or '-')[:12]}, the run's {head['task_sha256'][:12]}): its test "
                             "would not be the run's")
    if head["device"] == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"{origin}: the run was on CUDA; no CUDA device is visible here")
    device = resolve_device(head["device"])
    precision = resolve_precision(head["dtype"], device)
    loaded = load_model(cfg.model, device, precision.weights)
    base = seedlog.weights_sha256(loaded.model)
    if base != head["base_sha256"]:
        raise BenchmarkError(f"{origin}: the base weights of {cfg.model} here (SHA-256 {base[:12]}) are not the run's "
                             f"({head['base_sha256'][:12]}): the replay would not rebuild its weights")
    method = build_method(cfg, hp, loaded.model)
    began = time.perf_counter()
    method.restore(replay_log(method, log.entries, log.end["best_step"]))
    seconds = time.perf_counter() - began
    if out is not None:
        export.save_weights(loaded, out)
    score = scorer(cfg, loaded.model, encoder_for(cfg, loaded, device), task.generation)
    with precision.compute(device):
        test = score(splits.test)["score"]
    return Replayed(log, len(log.steps()), seconds, test, out)
