"""SST-2 (GLUE) with MeZO's template; test is sampled from the validation split (872 rows)."""
from __future__ import annotations

from benchmark.registry import register_task
from tasks.base import Pools, Task
from tasks.hub import hf_pools
from tasks.templates import sst2_example


def _pools() -> Pools:
    return hf_pools("sst2", "glue", "sst2", train="train", heldout="validation")


register_task("sst2")(Task(
    name="sst2",
    description="GLUE SST-2, MeZO's template (needs the HF hub or local files)",
    load_pools=_pools,
    render=lambda row: sst2_example(row["sentence"], row["label"]),
))
