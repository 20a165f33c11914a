"""The paper's hyperparameter grids (Table 7), as `--set` values per method.

Batch size ({64, 16}: 64 for RoBERTa, 16 for OPT/Llama) and the lr schedule (constant for RoBERTa,
linear for OPT/Llama) depend on the model, not the grid: they are in `OPT_SETS` and `ROBERTA_SETS`. LoRA under FT
and HiZOO are not in Table 7: LoRA takes MeZO-LoRA's learning rates, HiZOO MeZO's (the paper
tuned HiZOO from its released settings), and say so in their grids' names.
"""
from __future__ import annotations

from benchmark.experiments.base import Grid

FT: Grid = {"lr": ("1e-5", "5e-5"), "batch_size": ("8",)}
LORA: Grid = {"lr": ("1e-4", "5e-5"), "batch_size": ("8",)}  # not in Table 7
MEZO: Grid = {"lr": ("1e-6", "5e-7"), "eps": ("1e-3",)}
MEZO_LORA: Grid = {"lr": ("1e-4", "5e-5"), "eps": ("1e-2",)}
PROJECTION: Grid = {"projection_interval": ("50", "100", "200", "400"), "projection_eps": ("0.1", "0.05"),
                    "projection_step_size": ("2.0", "1.0"), "clip_range": ("0.1", "0.2", "0.3")}
FO_PROJECTION: Grid = {"projection_interval": ("50", "100", "200", "400"), "clip_range": ("0.1", "0.2", "0.3")}

GRIDS: dict[str, Grid] = {
    "zero-shot": {}, "ft": FT, "lora": LORA, "mezo": MEZO, "mezo-lora": MEZO_LORA,
    "hizoo": MEZO, "hizoo-lora": MEZO_LORA,  # not in Table 7
    "dizo": {**MEZO, **PROJECTION}, "dizo-lora": {**MEZO_LORA, **PROJECTION},
    "dizo-fo": {**MEZO, **FO_PROJECTION}, "dizo-fo-lora": {**MEZO_LORA, **FO_PROJECTION},
}

OPT_SETS = {"batch_size": "16", "lr_schedule": "linear"}  # OPT and Llama
ROBERTA_SETS = {"batch_size": "64", "lr_schedule": "constant"}
