"""Generation tasks (SQuAD, DROP): greedy decoding scored by token F1 after SQuAD normalisation.
Rows without a gold answer are dropped (MeZO asserts there are none)."""
from __future__ import annotations

from tasks import templates as T
from tasks.base import Task
from tasks.hub import hf_pools
from tasks.registry import register_task

register_task("squad")(Task(
    name="squad", description="SQuAD v1.1 extractive QA, generated answer, token F1 (87,599 train, 10,570 validation)",
    templates={"mezo": T.squad()}, metric="f1", load_pools=lambda: hf_pools("squad", "rajpurkar/squad", keep=lambda r: bool(r["answers"]["text"])),
))
register_task("drop")(Task(
    name="drop", description="DROP discrete reasoning QA, generated answer, token F1 (77,400 train, 9,535 validation)",
    templates={"mezo": T.drop()}, metric="f1", load_pools=lambda: hf_pools("drop", "ucinlp/drop", keep=lambda r: bool(r["answers_spans"]["spans"])),
))
