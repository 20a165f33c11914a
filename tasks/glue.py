"""Single-sentence and NLI classification: SST-2 for both model kinds; SST-5, SNLI, MNLI and TREC
with LM-BFF's templates for RoBERTa (Table 3). Test comes from the split LM-BFF tests on
(SST-2, MNLI: validation; SST-5, SNLI, TREC: test), capped at `num_test` rows.
"""
from __future__ import annotations

from tasks import templates as T
from tasks.base import Task
from tasks.hub import hf_pools
from tasks.registry import register_task

SST2_WORDS = ("terrible", "great")
SST5_WORDS = ("terrible", "bad", "okay", "good", "great")
NLI_WORDS = ("Yes", "Maybe", "No")  # labels 0 entailment, 1 neutral, 2 contradiction
# CogComp/trec coarse labels ABBR, ENTY, DESC, HUM, LOC, NUM -> LM-BFF's words for the same classes
TREC_WORDS = ("Expression", "Entity", "Description", "Human", "Location", "Number")

register_task("sst2")(Task(
    name="sst2", description="GLUE SST-2 (67,349 train, 872 validation); MeZO and LM-BFF templates",
    templates={"mezo": T.sentiment(SST2_WORDS), "lm-bff": T.masked_sentiment(SST2_WORDS)},
    load_pools=lambda: hf_pools("sst2", "nyu-mll/glue", "sst2"),
))
register_task("sst5")(Task(
    name="sst5", description="SST-5, five sentiment grades (8,544 train, 2,210 test); LM-BFF template",
    templates={"lm-bff": T.masked_sentiment(SST5_WORDS, column="text"), "mezo": T.sentiment(SST5_WORDS, column="text")},
    load_pools=lambda: hf_pools("sst5", "SetFit/sst5", heldout="test"),
))
register_task("snli")(Task(
    name="snli", description="SNLI (550k train, 9,824 test, unlabeled rows dropped); LM-BFF template",
    templates={"lm-bff": T.masked_entailment(NLI_WORDS)},
    load_pools=lambda: hf_pools("snli", "stanfordnlp/snli", heldout="test", keep=lambda r: r["label"] >= 0),
))
register_task("mnli")(Task(
    name="mnli", description="MNLI (393k train, 9,815 validation_matched); LM-BFF template",
    templates={"lm-bff": T.masked_entailment(NLI_WORDS)},
    load_pools=lambda: hf_pools("mnli", "nyu-mll/glue", "mnli", heldout="validation_matched"),
))
register_task("trec")(Task(
    name="trec", description="TREC question types, 6 coarse classes (5,452 train, 500 test); LM-BFF template",
    templates={"lm-bff": T.masked_label_first(TREC_WORDS, label="coarse_label")},
    load_pools=lambda: hf_pools("trec", "CogComp/trec", heldout="test"),
))
