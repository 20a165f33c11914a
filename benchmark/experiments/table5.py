"""Table 5: OPT-6.7B on four classification tasks and SQuAD."""
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table4 import opt_paper
from benchmark.experiments.table7 import GRIDS

ROWS = (Row("MeZO", "mezo"), Row("HiZOO", "hizoo"), Row("DiZO", "dizo"), Row("MeZO LoRA", "mezo-lora"),
        Row("HiZOO LoRA", "hizoo-lora"), Row("DiZO LoRA", "dizo-lora"))

register_experiment(Experiment(
    name="table5", description="OPT-6.7B, ZO methods and their LoRA variants (Table 5)", rows=ROWS, grids=GRIDS,
    presets={"paper": opt_paper("facebook/opt-6.7b", ("sst2", "rte", "cb", "wsc", "squad")),
             "offline": offline(), "smoke": smoke()},
))
