"""Table 9: alternatives to DiZO's projection (learning-rate projection, theta_{t-1} base) vs MeZO and DiZO."""
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table4 import opt_paper
from benchmark.experiments.table7 import GRIDS

ROWS = (Row("MeZO", "mezo"), Row("LR projection", "dizo", {"projection_target": "lr"}),
        Row("theta_{t-1} projection", "dizo", {"projection_base": "previous"}), Row("DiZO", "dizo"))

register_experiment(Experiment(
    name="table9", description="Alternatives to the projection, OPT-2.7B (Table 9)", rows=ROWS, grids=GRIDS,
    presets={"paper": opt_paper("facebook/opt-2.7b", ("sst2", "rte", "squad")), "offline": offline(("rt-polarity",)),
             "smoke": smoke()},
))
