"""What an experiment is: table rows (method + fixed settings), a hyperparameter grid per row,
and presets that size the same table for a GPU cluster (`paper`), a CPU (`offline`) or a test
(`smoke`). Each (model, task, row) cell becomes one Optuna study."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from benchmark.core.errors import BenchmarkError
from methods.registry import METHODS

Grid = dict[str, tuple[str, ...]]  # setting -> values, written as `--set` takes them; every combination a point
Points = tuple[dict[str, str], ...]  # listed points instead (e.g. one factor at a time around a centre)


@dataclass(frozen=True)
class Row:
    """One row of a paper table: a method, with settings that define the row (e.g. projected layers).

    `seeds`: the row's final seeds where they differ from the preset's (more seeds for the pair a claim
    compares). `tuned_by`: the label of another row whose best point this row runs, instead of a search
    of its own (an ablation is its method's tuned point with one part removed)."""

    label: str
    method: str
    sets: dict[str, str] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    tuned_by: str | None = None


@dataclass(frozen=True)
class Preset:
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    zo_steps: int
    fo_steps: int
    eval_every: int
    seeds: tuple[int, ...] = (0,)  # final evaluation of each cell's best-dev configuration
    sets: dict[str, str] = field(default_factory=dict)  # for every run (sizes, batch, schedule, k)
    grids: dict[str, Grid | Points] | None = None  # per method; None: the experiment's (the paper's Table 7)


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
    grid: Grid | Points  # a tuned_by row: its source row's (what validation checks)
    seeds: tuple[int, ...]
    source: str | None = None  # a tuned_by row: the name of the cell whose best point it runs
    records: bool = False  # the study writes each finished trial's run record (`benchmark.core.records`)
    extra_seeds: tuple[int, ...] = ()  # the row's seeds beyond the preset's: run after every other cell's trials

    @property
    def steps(self) -> int:
        """The preset's first-order or zeroth-order budget, as the row's method declares itself
        (looked up when asked: reports build cells without loading methods, and so torch)."""
        return self.fo_steps if METHODS.get(self.row.method).first_order else self.zo_steps

    @property
    def name(self) -> str:
        return f"{self.experiment}/{self.preset}/{self.model}/{self.task}/{self.row.label}"

    @property
    def task_name(self) -> str:
        """What this cell's runs are tagged with: a task file's `task:` name (read without loading its data),
        else the registered task's name. Reports ask the cell, never `tasks/`."""
        from tasks.task_file import name_of

        return name_of(self.task)

    def settings(self, point: dict[str, str]) -> dict[str, str]:
        """Everything a trial at `point` sets: preset, then grid point, then the row (which defines the row)."""
        return {**self.sets, "eval_every": str(self.eval_every), **point, **self.row.sets}

    def points(self) -> list[dict[str, str]]:
        """Every grid point, in a fixed order."""
        if isinstance(self.grid, tuple):
            return [dict(point) for point in self.grid]
        keys = sorted(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def choices(self) -> Grid:
        """Each setting's values over the points: the categories a trial records, a free search's ranges."""
        if isinstance(self.grid, dict):
            return self.grid
        keys = sorted({key for point in self.grid for key in point})
        return {key: tuple(dict.fromkeys(p[key] for p in self.grid if key in p)) for key in keys}


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    rows: tuple[Row, ...]
    grids: dict[str, Grid]  # per method
    presets: dict[str, Preset]
    records: bool = False  # each finished trial's run is written as a record to commit (`benchmark.core.records`)

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise BenchmarkError(f"experiment {self.name} has no preset {name!r}; choose from: "
                                 f"{', '.join(self.presets)}")
        return self.presets[name]

    def cells(self, preset_name: str) -> list[Cell]:
        preset = self.preset(preset_name)
        grids = {**self.grids, **(preset.grids or {})}
        labels = {row.label: row for row in self.rows}
        cells = []
        for model, task, row in itertools.product(preset.models, preset.tasks, self.rows):
            tuner = row
            if row.tuned_by is not None:
                tuner = labels.get(row.tuned_by)
                if tuner is None or tuner.tuned_by is not None or self.rows.index(tuner) > self.rows.index(row):
                    raise BenchmarkError(f"experiment {self.name}: row {row.label!r} is tuned by {row.tuned_by!r}, "
                                         "which must be an earlier row with a search of its own")
            grid = grids.get(tuner.method, {})
            source = None if tuner is row else f"{self.name}/{preset_name}/{model}/{task}/{tuner.label}"
            cells.append(Cell(self.name, preset_name, model, task, row, preset.zo_steps, preset.fo_steps,
                              preset.eval_every, dict(preset.sets), grid if isinstance(grid, tuple) else dict(grid),
                              row.seeds or preset.seeds, source, self.records,
                              tuple(s for s in row.seeds or () if s not in preset.seeds)))
        return cells
