"""Typed settings: dataclass fields that carry their help and check, `key=value` overrides, validation.

Every hyperparameter is a dataclass field with a check; `apply_overrides` parses text into the
field's type and `validate` runs the checks, so bad input fails before a model is loaded.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from typing import Any, Callable

from benchmark.core.errors import BenchmarkError

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
