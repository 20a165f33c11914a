"""Name -> entry registries (lm-evaluation-harness style), one per layer that owns entries:
`methods.registry.METHODS`, `tasks.registry.TASKS`, `benchmark.models.MODELS`,
`benchmark.experiments.registry.EXPERIMENTS`.

Adding a method, task or experiment is one module plus one decorator, nothing else to edit: on first
use the registry imports every module of its owner's package, whose decorators fill it. Importing a
registry costs nothing (reports read experiment definitions without loading torch). An unknown name
fails with the list of valid names so a typo is fixed in one look.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from benchmark.core.errors import BenchmarkError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, also: str = "") -> None:
        self.kind = kind
        self.package = package  # the package (or module) whose modules register every entry
        self.also = also  # what else a name may be, said after the list of valid names
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        root = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(getattr(root, "__path__", [])):  # a plain module registers itself
            importlib.import_module(f"{self.package}.{module.name}")
        self._loaded = True

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise BenchmarkError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
                                 + (f", {self.also}" if self.also else ""))
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries
