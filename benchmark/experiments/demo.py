"""`demo`: zero-shot, FT and MeZO on rt-polarity, as `make demo` runs them, as a study."""
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import OFFLINE_GRIDS, offline, smoke
from benchmark.experiments.registry import register_experiment

register_experiment(Experiment(
    name="demo", description="Zero-shot, FT and MeZO on rt-polarity with smollm2-135m",
    rows=(Row("Zero-shot", "zero-shot"), Row("FT", "ft"), Row("MeZO", "mezo")), grids=OFFLINE_GRIDS,
    presets={"paper": offline(("rt-polarity",)), "offline": offline(("rt-polarity",)), "smoke": smoke()},
))
