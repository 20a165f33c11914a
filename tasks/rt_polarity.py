"""Rotten Tomatoes sentences with human sentiment ratings: real, offline SST-2 and SST-5 analogues.

10,605 snippets (the corpus SST was built from), each rated by about 20 people on [-4, 4]
(Hutto & Gilbert, ICWSM 2014), shipped in the source archive of `vaderSentiment==3.3.2` on PyPI.
`rt-polarity` keeps |rating| >= 0.5 (~5k positive, ~5k negative); `rt-5way` keeps every sentence
and bins the rating the way SST-5 bins its [0, 1] sentiment (cuts at 0.2/0.4/0.6/0.8 of the scale).
"""
from __future__ import annotations

import bisect
import random
from functools import lru_cache

from benchmark.core.errors import BenchmarkError
from tasks import templates as T
from tasks.base import Pools, Row, Task
from tasks.fetch import nested, pip_sdist_file
from tasks.glue import SST2_WORDS, SST5_WORDS
from tasks.registry import register_task

SOURCE = "vaderSentiment==3.3.2"
FILENAME = "movieReviewSnippets_GroundTruth.txt"
EXTRACT = nested(["vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                  f"hutto_ICWSM_2014/{FILENAME}"])
SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
HELDOUT = 2000  # sentences reserved for test sampling, before any label filtering
PARTITION_SEED = 20140601  # fixed: the train/held-out partition never depends on the run seed
POLARITY_MARGIN = 0.5
FIVE_WAY_CUTS = (-2.4, -0.8, 0.8, 2.4)  # SST-5's 0.2/0.4/0.6/0.8 on the [-4, 4] scale


def fetch_ratings():
    return pip_sdist_file(SOURCE, FILENAME, EXTRACT, SHA256, "rt-ratings")


@lru_cache(maxsize=1)
def load_ratings() -> tuple[list[Row], list[Row]]:
    """(train pool, held-out pool) of {"id", "rating", "sentence"} rows, duplicates dropped."""
    path = fetch_ratings()
    rows: list[Row] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        try:
            row = {"id": int(parts[0]), "rating": float(parts[1]), "sentence": parts[2].strip()}
        except (IndexError, ValueError):
            raise BenchmarkError(f"{path}:{lineno}: malformed row; delete {path.parent} to fetch it again") from None
        if row["sentence"] not in seen:  # 2 sentences occur twice; one copy each keeps pools disjoint
            seen.add(row["sentence"])
            rows.append(row)
    random.Random(PARTITION_SEED).shuffle(rows)
    return rows[HELDOUT:], rows[:HELDOUT]


def _polar(rows: list[Row]) -> list[Row]:
    return [{**r, "label": int(r["rating"] > 0)} for r in rows if abs(r["rating"]) >= POLARITY_MARGIN]


def _five_way(rows: list[Row]) -> list[Row]:
    return [{**r, "label": bisect.bisect_right(FIVE_WAY_CUTS, r["rating"])} for r in rows]


def _pools(label) -> Pools:
    train, heldout = load_ratings()
    return Pools(train=label(train), heldout=label(heldout))


register_task("rt-polarity")(Task(
    name="rt-polarity",
    description="Rotten Tomatoes sentences, |human rating| >= 0.5, 2 classes (offline SST-2 analogue)",
    templates={"mezo": T.sentiment(SST2_WORDS), "review": T.review(("negative", "positive")),
               "lm-bff": T.masked_sentiment(SST2_WORDS)},
    load_pools=lambda: _pools(_polar),
))
register_task("rt-5way")(Task(
    name="rt-5way",
    description="Rotten Tomatoes sentences, human rating in 5 bins (offline SST-5 analogue)",
    templates={"mezo": T.sentiment(SST5_WORDS), "review": T.review(SST5_WORDS),
               "lm-bff": T.masked_sentiment(SST5_WORDS)},
    load_pools=lambda: _pools(_five_way),
))
