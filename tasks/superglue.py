"""SuperGLUE tasks as MeZO runs them on OPT/Llama (Tables 4, 5, 12, 13), plus RTE for RoBERTa.

Test is sampled from the validation split (the SuperGLUE test labels are hidden); when the
validation split is smaller than 1000 rows the whole split is the test set.
"""
from __future__ import annotations

from tasks import templates as T
from tasks.base import Sizes, Task
from tasks.hub import hf_pools
from tasks.registry import register_task

SUPERGLUE = "aps/super_glue"  # the hub's current home of MeZO's load_dataset("super_glue", ...)


def _superglue(name: str, config: str, description: str, templates: dict, sizes: Sizes = Sizes()) -> None:
    register_task(name)(Task(name=name, description=description, templates=templates, sizes=sizes,
                             load_pools=lambda: hf_pools(name, SUPERGLUE, config)))


_superglue("rte", "rte", "SuperGLUE RTE: entailment, Yes/No (2,490 train, 277 validation)",
           {"mezo": T.rte(), "lm-bff": T.masked_entailment(("Yes", "No"))})
# 250 train rows: 100 as dev, the other 150 to train (MeZO asked for 1000+100 and silently got 150+100)
_superglue("cb", "cb", "SuperGLUE CommitmentBank: Yes/No/Maybe (250 train, 56 validation)",
           {"mezo": T.cb()}, Sizes(train=150, dev=100))
_superglue("wsc", "wsc.fixed", "SuperGLUE WSC (fixed): does the pronoun refer to the span? (554 train, 104 validation)",
           {"mezo": T.wsc()}, Sizes(train=454, dev=100))
_superglue("wic", "wic", "SuperGLUE WiC: same word sense in two sentences? (5,428 train, 638 validation)",
           {"mezo": T.wic()})
_superglue("multirc", "multirc", "SuperGLUE MultiRC: is this answer correct? (27,243 train, 4,848 validation)",
           {"mezo": T.multirc()})
_superglue("copa", "copa", "SuperGLUE COPA: cause/effect, two choices (400 train, 100 validation)",
           {"mezo": T.copa()}, Sizes(train=300, dev=100))

# MeZO loads BoolQ from its own dataset ("boolq"), whose label column is the boolean `answer`
register_task("boolq")(Task(
    name="boolq", description="BoolQ: passage + yes/no question (9,427 train, 3,270 validation)",
    templates={"mezo": T.boolq()}, load_pools=lambda: hf_pools("boolq", "google/boolq")))
