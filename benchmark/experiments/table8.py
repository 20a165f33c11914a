"""Table 8: which attention projections DiZO projects (OPT-2.7B; SST-2, RTE, SQuAD)."""
from benchmark.experiments.base import Experiment, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table4 import opt_paper
from benchmark.experiments.table7 import GRIDS

LAYERS = ("q,v,k,o,dense", "q,v,k,o", "q,v,k", "q,v", "q")
ROWS = tuple(Row(f"DiZO [{layers}]", "dizo", {"projected_layers": layers}) for layers in LAYERS)

register_experiment(Experiment(
    name="table8", description="DiZO with different projected layers (Table 8)", rows=ROWS, grids=GRIDS,
    presets={"paper": opt_paper("facebook/opt-2.7b", ("sst2", "rte", "squad")), "offline": offline(("rt-polarity",)),
             "smoke": smoke()},
))
