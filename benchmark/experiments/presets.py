"""Presets shared by the experiments: `offline` (smollm2-135m on the offline tasks, CPU-sized) and
`smoke` (a tiny random model, seconds per trial). `paper` presets live with each experiment."""
from __future__ import annotations

from benchmark.experiments.base import Grid, Preset

OFFLINE_TASKS = ("rt-polarity", "bbc-news")
# one point per method, chosen for a 135M model and ~100 steps (the paper's rates are for 2.7B+ and 4000 steps)
OFFLINE_GRIDS: dict[str, Grid] = {
    "zero-shot": {}, "ft": {"lr": ("1e-5",), "batch_size": ("8",)}, "lora": {"lr": ("1e-4",), "batch_size": ("8",)},
    "mezo": {"lr": ("3e-5",), "eps": ("1e-3",)}, "hizoo": {"lr": ("3e-5",), "eps": ("1e-3",)},
    "dizo": {"lr": ("3e-5",), "eps": ("1e-3",), "projection_interval": ("20",)},
    "dizo-fo": {"lr": ("3e-5",), "eps": ("1e-3",), "projection_interval": ("20",)},
    "mezo-lora": {"lr": ("1e-3",), "eps": ("1e-2",)}, "hizoo-lora": {"lr": ("1e-3",), "eps": ("1e-2",)},
    "dizo-lora": {"lr": ("1e-3",), "eps": ("1e-2",), "projection_interval": ("20",)},
    "dizo-fo-lora": {"lr": ("1e-3",), "eps": ("1e-2",), "projection_interval": ("20",)},
}
OFFLINE_SETS = {"num_train": "1000", "num_dev": "200", "num_test": "500", "batch_size": "16",
                "eval_batch_size": "64", "lr_schedule": "constant", "log_drift": "true"}  # drift: Figure 1
# two points per method so a smoke study is a real grid
SMOKE_GRIDS: dict[str, Grid] = {name: {**grid, "lr": ("1e-3", "1e-4")} if name != "zero-shot" else {}
                                for name, grid in OFFLINE_GRIDS.items()}
SMOKE_SETS = {"num_train": "16", "num_dev": "8", "num_test": "8", "batch_size": "4", "eval_batch_size": "8"}


def offline(tasks: tuple[str, ...] = OFFLINE_TASKS, **sets: str) -> Preset:
    return Preset(models=("smollm2-135m",), tasks=tasks, zo_steps=100, fo_steps=50, eval_every=25,
                  sets={**OFFLINE_SETS, **sets}, grids=OFFLINE_GRIDS)


def smoke(tasks: tuple[str, ...] = ("rt-polarity",), model: str = "tiny-random-llama", **sets: str) -> Preset:
    return Preset(models=(model,), tasks=tasks, zo_steps=4, fo_steps=4, eval_every=2, seeds=(0, 1),
                  sets={**SMOKE_SETS, **sets}, grids=SMOKE_GRIDS)
