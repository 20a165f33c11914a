"""Prompt templates, character for character as MeZO's `templates.py` writes them."""
from __future__ import annotations

from tasks.base import Example

SST2_VERBALIZER = ("terrible", "great")


def sst2_example(sentence: str, label: int) -> Example:
    """MeZO's SST2Template: "<sentence> It was" + " terrible" | " great"."""
    return Example(prompt=f"{sentence.strip()} It was", candidates=tuple(f" {w}" for w in SST2_VERBALIZER), gold=label)
