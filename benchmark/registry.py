"""Name -> factory registries for methods, tasks, models and experiments (lm-evaluation-harness style).

Adding a method, task or model is one module plus one decorator; an unknown name fails with the
list of valid names so a typo is fixed in one look.
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from benchmark.errors import BenchmarkError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, plugins: tuple[str, ...] = ("benchmark.models", "methods", "tasks")) -> None:
        self.kind = kind
        self.plugins = plugins  # packages whose import registers the entries (experiments need no torch)
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        """Import the packages whose modules register themselves (idempotent, import-cached)."""
        for module in self.plugins:
            importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise BenchmarkError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


METHODS: Registry = Registry("method")
TASKS: Registry = Registry("task")
MODELS: Registry = Registry("model")
EXPERIMENTS: Registry = Registry("experiment", plugins=("benchmark.experiments",))

register_method = METHODS.register
register_task = TASKS.register
register_model = MODELS.register


def register_experiment(experiment):  # an Experiment registers under its own name
    return EXPERIMENTS.register(experiment.name)(experiment)
