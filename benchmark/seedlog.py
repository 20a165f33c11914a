"""The seed log: a zeroth-order run's whole trajectory in kilobytes, and its one reader.

After step t a ZO run's weights are the base weights plus the replay of t (seed, scalars) records:
z is regenerated from its seed, so the log rebuilds the weights bit for bit on the same device and
dtype (`benchmark replay`), and a killed run resumes from it (`benchmark run ... --resume`).

Format `zo-bench-seed-log`, version 2: JSON Lines, UTF-8, one object per line.
- Line 1, the header: `format`, `version`, `method`, `model`, `base_sha256` (the base weights as
  loaded, `weights_sha256`), `dtype` (resolved: fp32, fp16, bf16, bf16-mixed), `device` (cpu, cuda),
  `generator` (z's generator, resolved: philox or torch-normal; `methods/zo/generators.py`),
  `packages`, `git_commit`, `config` (every run setting and hyperparameter, typed).
  Version 1 is version 2 without `generator`: every version-1 log was drawn with torch-normal, and
  replays and resumes with it (`generator_of`).
- One line per training step, from 1 in order: `{"step": t, ...}` with the method's record:
  `seed` (z's seed), `grad` (the projected gradient), `lr` (this step's learning rate; the decay is
  the config's `weight_decay` times it); HiZOO adds `curvature` (it moves the Hessian estimate);
  DiZO and DiZO-FO add, at a projection step, `projection`: `{"gamma": [...], "ratios": [...]}`, one
  number per projected layer.
- One line per evaluation, after its step's line: `{"eval": t, "dev": score, "best": true|false}`;
  `best` marks each new best on dev.
- The last line of a finished run: `{"end": steps, "best_step": b, "test": score}`.
Numbers are written with Python's repr (the shortest that reads back exactly): every float is exact.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError
from methods.registry import METHODS

FORMAT, VERSION = "zo-bench-seed-log", 2
READS = (1, 2)  # the versions this harness replays
LEGACY_GENERATOR = "torch-normal"  # what version 1 drew z with (methods.zo.generators.LEGACY)
FILE = "seed_log.jsonl"
HEADER_KEYS = ("method", "model", "base_sha256", "dtype", "device", "config")


@dataclass
class SeedLog:
    header: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)  # step and eval lines, in order
    end: dict[str, Any] | None = None  # the end line of a finished run

    def steps(self, until: int | None = None) -> list[dict[str, Any]]:
        """The step lines, up to step `until` (all by default)."""
        return [e for e in self.entries if "step" in e and (until is None or e["step"] <= until)]

    def text(self) -> str:
        lines = [self.header, *self.entries, *([self.end] if self.end else [])]
        return "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines)

    def write(self, path: Path) -> int:
        """Write atomically (a kill leaves the old file or the new one, never half of one); returns bytes."""
        data = self.text().encode()
        write_atomic(path, data)
        return len(data)


class Trajectory:
    """The one hook through which a run records its seed log's step and evaluation lines as it makes them:
    a method that `replays` gets its lines appended to `entries`; any other records nothing. The lines'
    format lives here, beside their reader, not in the training loop."""

    def __init__(self, method: Any, entries: list[dict[str, Any]]) -> None:
        self.entries = entries if method.replays else None

    def step(self, step: int, record: dict[str, Any]) -> None:
        if self.entries is not None:
            self.entries.append({"step": step, **record})

    def evaluation(self, step: int, dev: float, best: bool) -> None:
        if self.entries is not None:
            self.entries.append({"eval": step, "dev": dev, "best": best})


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def header(method: str, model: str, base_sha256: str, dtype: str, device: str, packages: str, git_commit: str,
           config: dict[str, Any], task_sha256: str = "", generator: str = "") -> dict[str, Any]:
    """`task_sha256`: a task file's content hash (`tasks.task_file.sha256`), "" for a registered task;
    `generator`: the resolved generator of z ("" for a method without one)."""
    return {"format": FORMAT, "version": VERSION, "method": method, "model": model, "base_sha256": base_sha256,
            "dtype": dtype, "device": device, "generator": generator, "packages": packages, "git_commit": git_commit,
            "config": config, "task_sha256": task_sha256}


def generator_of(head: dict[str, Any]) -> str:
    """The generator a log (or a checkpoint's header) was drawn with: version 1 names none and used torch-normal."""
    return head.get("generator") or LEGACY_GENERATOR


def weights_sha256(model: Any) -> str:
    """SHA-256 over every parameter of the model as loaded (name, dtype, shape, bytes; tied weights once):
    the base a log replays onto. 0.40-0.45 s for SmolLM2-135M in fp32 (2-core Xeon, 3 timings)."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = p.detach().to("cpu").contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.view(torch.uint8).numpy() if t.numel() else b"")  # the buffer itself, no copy
    return digest.hexdigest()


def _number(value: Any) -> bool:
    """A finite number, or a non-empty list of them (FZOO's per-probe steps)."""
    if isinstance(value, list):
        return bool(value) and all(map(_number, value))
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read(path: Path, origin: str) -> SeedLog:
    """Parse and check a seed log before any work: every line, the steps' order, and the fields each step
    line must carry (its method's `record_keys`, the method named in the header). `origin` names it in
    errors (a run id or a path)."""
    def bad(what: str) -> BenchmarkError:
        return BenchmarkError(f"seed log of {origin}: {what}")

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise bad(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if not lines:
        raise bad("empty file")
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise bad(f"line {number} is not JSON (a truncated or corrupt file)") from None
        if not isinstance(parsed[-1], dict):
            raise bad(f"line {number} is not a JSON object")
    head = parsed[0]
    if head.get("format") != FORMAT:
        raise bad(f"line 1 is not a {FORMAT} header")
    if head.get("version") not in READS:
        raise bad(f"version {head.get('version')!r}; this harness reads versions {', '.join(map(str, READS))}")
    missing = [k for k in HEADER_KEYS if k not in head]
    if missing:
        raise bad(f"the header lacks {', '.join(missing)}")
    method = METHODS.get(head["method"])
    if not method.replays:
        raise bad(f"method {head['method']} does not replay")
    record_keys = method.record_keys
    log, last = SeedLog(head), 0
    for number, entry in enumerate(parsed[1:], 2):
        if log.end is not None:
            raise bad(f"line {number} follows the end record")
        if "step" in entry:
            if entry["step"] != last + 1:
                raise bad(f"line {number}: step {entry['step']} after step {last} (steps missing)")
            absent = [k for k in record_keys if not _number(entry.get(k))]
            if absent:
                raise bad(f"line {number} (step {entry['step']}) lacks a number for {', '.join(absent)}")
            last = entry["step"]
            log.entries.append(entry)
        elif "eval" in entry:
            if entry["eval"] != last or not _number(entry.get("dev")):
                raise bad(f"line {number}: an evaluation that does not follow its step")
            log.entries.append(entry)
        elif "end" in entry:
            if entry["end"] != last or not isinstance(entry.get("best_step"), int) or entry["best_step"] > last:
                raise bad(f"line {number}: the end record does not match the {last} steps logged")
            log.end = entry
        else:
            raise bad(f"line {number} is neither a step, an evaluation nor the end")
    return log
