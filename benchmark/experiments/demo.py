"""`demo`: zero-shot, FT and MeZO on rt-polarity, as `make demo` runs them (the Makefile's settings), as a
study: minutes, one seed, the demo's hand-set points (not the offline preset's hours)."""
from benchmark.experiments.base import Experiment, Preset, Row
from benchmark.experiments.presets import smoke
from benchmark.experiments.registry import register_experiment

GRIDS = {"zero-shot": {}, "ft": {"lr": ("1e-5",), "batch_size": ("8",)},
         "mezo": {"lr": ("3e-5",), "eps": ("1e-3",), "batch_size": ("16",)}}
DEMO = Preset(models=("smollm2-135m",), tasks=("rt-polarity",), zo_steps=100, fo_steps=50, eval_every=25,
              sets={"num_dev": "300", "num_test": "500", "eval_batch_size": "64"}, grids=GRIDS)

register_experiment(Experiment(
    name="demo", description="Zero-shot, FT and MeZO on rt-polarity with smollm2-135m",
    rows=(Row("Zero-shot", "zero-shot"), Row("FT", "ft"), Row("MeZO", "mezo")), grids=GRIDS,
    presets={"paper": DEMO, "offline": DEMO, "smoke": smoke()},
))
