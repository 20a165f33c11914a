"""Run configuration: typed dataclasses, `key=value` overrides and up-front validation.

Every hyperparameter is a dataclass field with a check; `apply_overrides` parses text into the
field's type and `validate` runs the checks, so bad input fails before a model is loaded.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmark.errors import BenchmarkError

Check = Callable[[Any], bool]


def param(default: Any, help: str, check: Check | None = None, rule: str = "") -> Any:
    """A dataclass field carrying its help text and validity check (rule is the check in words)."""
    return field(default=default, metadata={"help": help, "check": check, "rule": rule})


def positive(x: Any) -> bool:
    return x > 0


def non_negative(x: Any) -> bool:
    return x >= 0


def one_of(*choices: str) -> tuple[Check, str]:
    return (lambda x: x in choices), "one of " + "|".join(choices)


@dataclass
class RunConfig:
    """Everything that defines one training run apart from the method's own hyperparameters."""

    method: str
    task: str
    model: str = param("smollm2-135m", "registered model name, HF hub id or local path")
    steps: int = param(1000, "training steps", positive, "> 0")
    seed: int = param(0, "seed for data sampling, batch order and ZO directions", non_negative, ">= 0")
    device: str = param("auto", "auto|cpu|cuda", *one_of("auto", "cpu", "cuda"))
    dtype: str = param("auto", "auto (fp32 on CPU, fp16 on CUDA)|fp32|fp16|bf16", *one_of("auto", "fp32", "fp16", "bf16"))
    batch_size: int = param(16, "training examples per step", positive, "> 0")
    eval_every: int = param(100, "evaluate on dev every N steps (and at the end)", positive, "> 0")
    num_train: int | None = param(None, "training examples from the train pool (none: the task's size, 1000 for most)",
                                  positive, "> 0")
    num_dev: int | None = param(None, "dev examples, from the train pool, disjoint from train (none: the task's, 500 "
                                "for most)", positive, "> 0")
    num_test: int | None = param(None, "test examples, from the held-out pool, fixed across seeds (none: 1000 or the "
                                 "whole pool if smaller)", positive, "> 0")
    k: int | None = param(None, "k-shot: k examples per class for train and k for dev (LM-BFF; 16 or 512 in the "
                          "paper); none: num_train/num_dev", positive, "> 0")
    template: str | None = param(None, "prompt template name (benchmark show-task lists them); none: the task's "
                                 "default for the model kind")
    eval_batch_size: int = param(32, "examples per evaluation forward", positive, "> 0")
    max_length: int = param(2048, "max tokens per prompt+candidate (prompt truncated on the left)", positive, "> 0")
    lr_schedule: str = param("constant", "constant|linear (linear decays to 0 at the last step)", *one_of("constant", "linear"))
    experiment: str = param("adhoc", "MLflow experiment name")
    log_drift: bool = param(False, "log ||theta_t - theta_0|| per attention projection and layer at each evaluation "
                                   "(drift/<role>/<layer>, Figure 1; keeps a host copy of those weights)")


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _optional(typ: Any) -> Any:
    """The X of `X | None`, or None if `typ` is not optional."""
    args = typing.get_args(typ)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return None


def _parse(name: str, text: str, typ: Any) -> Any:
    inner = _optional(typ)
    if inner is not None:
        return None if text.lower() == "none" else _parse(name, text, inner)
    try:
        if typ is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        if typ is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        return text
    except ValueError:
        raise BenchmarkError(f"{name}={text!r}: expected {typ.__name__}") from None


def _types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def apply_overrides(targets: list[Any], overrides: dict[str, str]) -> None:
    """Set `key=value` overrides on the first dataclass in `targets` that has the key."""
    for key, text in overrides.items():
        for obj in targets:
            types = _types(obj)
            if key in types:
                setattr(obj, key, _parse(key, text, types[key]))
                break
        else:
            valid = sorted({f.name for obj in targets for f in dataclasses.fields(obj)} - {"method", "task"})
            raise BenchmarkError(f"unknown setting {key!r}; valid keys: {', '.join(valid)}")


def validate(obj: Any) -> None:
    """Run every field's check; raise one clear line naming the first bad value."""
    types = _types(obj)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        typ = types[f.name]
        if _optional(typ) is not None:
            if value is None:
                continue
            typ = _optional(typ)
        if typ in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BenchmarkError(f"{f.name}={value!r}: expected {typ.__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BenchmarkError(f"{f.name}={value!r}: must be finite")
        check = f.metadata.get("check")
        if check is not None and not check(value):
            raise BenchmarkError(f"{f.name}={value!r} is out of range: must be {f.metadata.get('rule', 'valid')}")


def parse_set_args(items: list[str]) -> dict[str, str]:
    """`["lr=1e-6", "eps=1e-3"]` -> dict; a malformed item is a user error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchmarkError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def flatten(*objs: Any) -> dict[str, Any]:
    """All fields of the given dataclasses as one flat dict (MLflow params)."""
    out: dict[str, Any] = {}
    for obj in objs:
        out.update(dataclasses.asdict(obj))
    return out
