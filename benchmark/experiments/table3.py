"""Table 3: RoBERTa-large, prompt-based (LM-BFF) k-shot fine-tuning, k = 16 and 512, 5 data seeds."""
from benchmark.experiments.base import Experiment, Preset, Row
from benchmark.experiments.presets import offline, smoke
from benchmark.experiments.registry import register_experiment
from benchmark.experiments.table7 import GRIDS, ROBERTA_SETS
from tasks.sampling import KSHOT_SEEDS

METHODS = (("MeZO", "mezo"), ("MeZO LoRA", "mezo-lora"), ("DiZO", "dizo"), ("DiZO LoRA", "dizo-lora"),
           ("FT", "ft"), ("FT LoRA", "lora"))
ROWS = (Row("Zero-shot", "zero-shot"),) + tuple(
    Row(f"{label} k={k}", method, {"k": str(k)}) for k in (16, 512) for label, method in METHODS)

register_experiment(Experiment(
    name="table3", description="RoBERTa-large, LM-BFF prompts, k=16/512 per class, 5 seeds (Table 3)",
    rows=ROWS, grids=GRIDS,
    presets={
        # MeZO's RoBERTa budget: 100k ZO steps (dev every 10k), 1000 FT steps; test capped at 1000
        "paper": Preset(models=("FacebookAI/roberta-large",), tasks=("sst2", "sst5", "snli", "mnli", "rte", "trec"),
                        zo_steps=100_000, fo_steps=1000, eval_every=10_000, seeds=KSHOT_SEEDS, sets=ROBERTA_SETS),
        # offline: the same k-shot protocol on smollm2 (no masked LM ships offline); rt-polarity has
        # the 2 x 512 rows per class that k=512 needs, rt-5way and bbc-news do not
        "offline": offline(("rt-polarity",)),
        "smoke": smoke(model="tiny-random-roberta"),
    },
))
