"""Appendix C.2 / Figure 5: DiZO without re-initialisation, without clipping (RoBERTa-large, k=16).

The ablation rows' labels are written here once: the claims study's ablation rows and every report
(tables, figures, claims) take them from `NO_REINIT` and `NO_CLIP`."""
from benchmark.core.names import BASELINE_ROW, DIZO_ROW
from benchmark.experiments.base import Experiment, Preset, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table7 import GRIDS, ROBERTA_SETS
from tasks.sampling import KSHOT_SEEDS

K16 = {"k": "16"}
NO_REINIT = Row("DiZO no re-init", "dizo", {**K16, "reinit": "false"})
NO_CLIP = Row("DiZO no clipping", "dizo", {**K16, "clip_range": "none"})
ROWS = (Row(BASELINE_ROW, "mezo", K16), NO_REINIT, NO_CLIP, Row(DIZO_ROW, "dizo", K16))
# the ablation switches must not be overridden by the grid's clip_range values
GRIDS_NO_CLIP = {**GRIDS, "dizo": {k: v for k, v in GRIDS["dizo"].items() if k != "clip_range"}}

register_experiment(Experiment(
    name="ablation-c2", description="DiZO ablation: re-init and clipping, RoBERTa-large k=16 (Table C.2, Fig. 5)",
    rows=ROWS, grids=GRIDS_NO_CLIP,
    presets={"paper": Preset(models=("FacebookAI/roberta-large",), tasks=("sst2", "snli", "trec"), zo_steps=100_000,
                             fo_steps=1000, eval_every=10_000, seeds=KSHOT_SEEDS, sets=ROBERTA_SETS),
             "offline": offline(("rt-polarity",)), "smoke": smoke()},
))
