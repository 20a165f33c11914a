"""Table 4: OPT-2.7B, 1000 training examples, 7 classification + 2 generation tasks, 9 method rows + zero-shot."""
from benchmark.experiments.base import Experiment, Preset, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table7 import GRIDS, OPT_SETS

OPT_TASKS = ("sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "squad", "drop")
ROWS = (Row("Zero-shot", "zero-shot"), Row("FT", "ft"), Row("LoRA", "lora"), Row("MeZO", "mezo"),
        Row("HiZOO", "hizoo"), Row("DiZO", "dizo"), Row("MeZO LoRA", "mezo-lora"), Row("HiZOO LoRA", "hizoo-lora"),
        Row("DiZO LoRA", "dizo-lora"))


def opt_paper(model: str, tasks: tuple[str, ...] = OPT_TASKS) -> Preset:
    """DiZO's released scripts: 4000 ZO steps, dev every 100; FT 5 epochs of 1000 at batch 8 (625 steps)."""
    return Preset(models=(model,), tasks=tasks, zo_steps=4000, fo_steps=625, eval_every=100, sets=OPT_SETS)


register_experiment(Experiment(
    name="table4", description="OPT-2.7B on SuperGLUE + SST-2 + SQuAD + DROP (Table 4)", rows=ROWS, grids=GRIDS,
    presets={"paper": opt_paper("facebook/opt-2.7b"), "offline": offline(), "smoke": smoke()},
))
