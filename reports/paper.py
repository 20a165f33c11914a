"""The paper's published numbers (`reports/paper/*.csv`), parsed for side-by-side reports.

Cells are text as printed: "90.5 (1.2)" is mean (std) over 5 seeds, "90.5" a single number, ""
not reported. No torch here: reports read MLflow and these files only.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from benchmark.core.errors import BenchmarkError

PAPER_DIR = Path(__file__).parent / "paper"
TABLES = {
    "table1_2": "table1_2_sst2.csv", "table3": "table3_roberta_large.csv", "table4": "table4_opt2.7b.csv",
    "table5": "table5_opt6.7b.csv", "table6": "table6_10_11_memory_speed_opt2.7b.csv",
    "table7": "table7_hyperparameters.csv", "table8": "table8_projection_layers.csv",
    "table9": "table9_alternatives_opt2.7b.csv", "ablation-c2": "table_c2_ablation_roberta_k16.csv",
    "table12_13": "table12_13_llama.csv", "reference-logs": "reference_logs_opt2.7b_sst2.csv",
}
_CELL = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:\(\s*(\d+(?:\.\d+)?)\s*\))?\s*$")


@dataclass(frozen=True)
class Value:
    mean: float
    std: float | None = None  # only where the paper reports seeds


def parse_cell(text: object) -> Value | None:
    """"90.5 (1.2)" -> Value(90.5, 1.2); "90.5" -> Value(90.5); "" or "-" -> None."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if isinstance(text, (int, float)):
        return Value(float(text))
    s = str(text).strip()
    if s in ("", "-"):
        return None
    match = _CELL.match(s)
    if match is None:
        raise BenchmarkError(f"paper cell {s!r} is not a number or 'mean (std)'")
    mean, std = match.groups()
    return Value(float(mean), float(std) if std is not None else None)


@lru_cache(maxsize=None)
def table(name: str) -> pd.DataFrame:
    """The paper's table as printed (strings), by report name (table4, ablation-c2, ...)."""
    if name not in TABLES:
        raise BenchmarkError(f"no paper table {name!r}; choose from: {', '.join(TABLES)}")
    return pd.read_csv(PAPER_DIR / TABLES[name], dtype=str, keep_default_na=False)
