"""What an experiment is: table rows (method + fixed settings), a hyperparameter grid per row,
and presets that size the same table for a GPU cluster (`paper`), a CPU (`offline`) or a test
(`smoke`). Each (model, task, row) cell becomes one Optuna study."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from benchmark.core.errors import BenchmarkError
from methods.registry import METHODS

Grid = dict[str, tuple[str, ...]]  # setting -> values, written as `--set` takes them


@dataclass(frozen=True)
class Row:
    """One row of a paper table: a method, with settings that define the row (e.g. projected layers)."""

    label: str
    method: str
    sets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    zo_steps: int
    fo_steps: int
    eval_every: int
    seeds: tuple[int, ...] = (0,)  # final evaluation of each cell's best-dev configuration
    sets: dict[str, str] = field(default_factory=dict)  # for every run (sizes, batch, schedule, k)
    grids: dict[str, Grid] | None = None  # per method; None: the experiment's (the paper's Table 7)


@dataclass(frozen=True)
class Cell:
    """One study: a (model, task, row) with its grid and fixed settings."""

    experiment: str
    preset: str
    model: str
    task: str
    row: Row
    zo_steps: int
    fo_steps: int
    eval_every: int
    sets: dict[str, str]  # the preset's; a trial applies these, then its grid point, then the row's
    grid: Grid
    seeds: tuple[int, ...]

    @property
    def steps(self) -> int:
        """The preset's first-order or zeroth-order budget, as the row's method declares itself
        (looked up when asked: reports build cells without loading methods, and so torch)."""
        return self.fo_steps if METHODS.get(self.row.method).first_order else self.zo_steps

    @property
    def name(self) -> str:
        return f"{self.experiment}/{self.preset}/{self.model}/{self.task}/{self.row.label}"

    def settings(self, point: dict[str, str]) -> dict[str, str]:
        """Everything a trial at `point` sets: preset, then grid point, then the row (which defines the row)."""
        return {**self.sets, "eval_every": str(self.eval_every), **point, **self.row.sets}

    def points(self) -> list[dict[str, str]]:
        """Every grid point, in a fixed order."""
        keys = sorted(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    rows: tuple[Row, ...]
    grids: dict[str, Grid]  # per method
    presets: dict[str, Preset]

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise BenchmarkError(f"experiment {self.name} has no preset {name!r}; choose from: "
                                 f"{', '.join(self.presets)}")
        return self.presets[name]

    def cells(self, preset_name: str) -> list[Cell]:
        preset = self.preset(preset_name)
        grids = {**self.grids, **(preset.grids or {})}
        cells = []
        for model, task, row in itertools.product(preset.models, preset.tasks, self.rows):
            cells.append(Cell(self.name, preset_name, model, task, row, preset.zo_steps, preset.fo_steps,
                              preset.eval_every, dict(preset.sets), dict(grids.get(row.method, {})), preset.seeds))
        return cells
