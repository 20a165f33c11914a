"""Tables 12 and 13: Llama3-3B (FT, MeZO, DiZO) and Llama3-8B (MeZO, DiZO) on Table 4's tasks."""
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table4 import opt_paper
from benchmark.experiments.table7 import GRIDS

register_experiment(Experiment(
    name="table12", description="Llama3-3B (Table 12)", rows=(Row("FT", "ft"), Row("MeZO", "mezo"), Row("DiZO", "dizo")),
    grids=GRIDS, presets={"paper": opt_paper("meta-llama/Llama-3.2-3B"), "offline": offline(), "smoke": smoke()},
))
register_experiment(Experiment(
    name="table13", description="Llama3-8B (Table 13)", rows=(Row("MeZO", "mezo"), Row("DiZO", "dizo")),
    grids=GRIDS, presets={"paper": opt_paper("meta-llama/Meta-Llama-3-8B"), "offline": offline(), "smoke": smoke()},
))
