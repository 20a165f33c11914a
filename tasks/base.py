"""What a task is: raw pools of rows, prompt templates per model kind, a metric, default sizes.

A task never knows about methods or models. The runner picks the task's template for the model's
kind (causal LM: the candidate continues the prompt; masked LM: the candidate fills a mask between
`prompt` and `suffix`), renders rows into `Example`s and scores them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from benchmark.core.errors import BenchmarkError

Row = dict
Kind = Literal["causal", "masked"]
KINDS: tuple[Kind, ...] = ("causal", "masked")


@dataclass(frozen=True)
class Example:
    prompt: str
    candidates: tuple[str, ...]  # classification: label words/continuations; generation: (training target,)
    gold: int
    suffix: str = ""  # masked LM only: text after the mask the candidate fills
    answers: tuple[str, ...] = ()  # generation only: every gold answer (score = max over them)


Render = Callable[[Row], Example]


@dataclass(frozen=True)
class Template:
    kind: Kind  # which model kind the prompt is written for
    render: Render
    source: str  # where the wording comes from, so a reader can check it


@dataclass(frozen=True)
class Pools:
    """Raw rows: `train` feeds train and dev samples, `heldout` feeds the test sample only."""

    train: list[Row]
    heldout: list[Row]


@dataclass(frozen=True)
class Sizes:
    """Default train/dev/test sample sizes. Tasks with small train splits declare theirs here
    instead of being silently shrunk (MeZO's sampler quietly gave WSC 54 training examples)."""

    train: int = 1000
    dev: int = 500
    test: int = 1000


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load_pools: Callable[[], Pools]
    templates: dict[str, Template]  # the first template of each kind is that kind's default
    metric: Literal["accuracy", "f1"] = "accuracy"  # f1: generation, greedy decoding + SQuAD token F1
    sizes: Sizes = field(default_factory=Sizes)
    file: str | None = None  # a task from a YAML file (tasks/task_file.py): its path and content hash
    file_sha256: str | None = None

    @property
    def generation(self) -> bool:
        return self.metric == "f1"

    def template(self, kind: Kind, name: str | None = None) -> tuple[str, Template]:
        """The named template (or the default one) for a model kind; a clear error otherwise."""
        fitting = {n: t for n, t in self.templates.items() if t.kind == kind}
        if name is None:
            if not fitting:
                raise BenchmarkError(f"task {self.name} has no prompt for {kind} LMs (it has: {self._listing()})")
            name = next(iter(fitting))
        if name not in fitting:
            raise BenchmarkError(f"task {self.name}: no {kind}-LM template {name!r} (it has: {self._listing()})")
        return name, fitting[name]

    def _listing(self) -> str:
        return ", ".join(f"{n} ({t.kind})" for n, t in self.templates.items())


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
