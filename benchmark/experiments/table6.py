"""Tables 6, 10, 11: memory and speed on OPT-2.7B (RTE, SST-2, SQuAD), each method at one setting.

Accuracy is not the point here: peak/average memory, throughput, iterations and GPU hours are read
from the runs' `perf/*` metrics. One grid point per method (the paper's first Table 7 values)."""
from benchmark.experiments.base import Experiment, Preset, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table7 import GRIDS, OPT_SETS

ROWS = (Row("FT", "ft"), Row("LoRA", "lora"), Row("DiZO-FO", "dizo-fo"), Row("DiZO-FO LoRA", "dizo-fo-lora"),
        Row("MeZO", "mezo"), Row("HiZOO", "hizoo"), Row("DiZO", "dizo"), Row("MeZO LoRA", "mezo-lora"),
        Row("HiZOO LoRA", "hizoo-lora"), Row("DiZO LoRA", "dizo-lora"))
FIRST_POINT = {method: {k: v[:1] for k, v in grid.items()} for method, grid in GRIDS.items()}

register_experiment(Experiment(
    name="table6", description="Memory and speed on OPT-2.7B: RTE (Table 6), SST-2 (10), SQuAD (11)",
    rows=ROWS, grids=FIRST_POINT,
    presets={"paper": Preset(models=("facebook/opt-2.7b",), tasks=("rte", "sst2", "squad"), zo_steps=4000,
                             fo_steps=625, eval_every=100, sets=OPT_SETS),
             "offline": offline(("rt-polarity",), zo_steps=100, fo_steps=50, seeds=(0,)),  # speed, not accuracy
             "smoke": smoke()},
))
