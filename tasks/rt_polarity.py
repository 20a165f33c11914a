"""Rotten Tomatoes sentences with human sentiment ratings: a real, offline SST-2 analogue.

10,605 snippets (the corpus SST was built from), each rated by about 20 people on [-4, 4]
(Hutto & Gilbert, ICWSM 2014), shipped in the source archive of `vaderSentiment==3.3.2` on PyPI.
`rt-polarity` keeps |rating| >= 0.5: ~5k positive, ~5k negative.
"""
from __future__ import annotations

import random
from functools import lru_cache

from benchmark.errors import BenchmarkError
from benchmark.registry import register_task
from tasks.base import Pools, Row, Task
from tasks.fetch import pip_sdist_file
from tasks.templates import sst2_example

SOURCE = "vaderSentiment==3.3.2"
CHAIN = ["vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
         "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"]
SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
HELDOUT = 2000  # sentences reserved for test sampling, before any label filtering
PARTITION_SEED = 20140601  # fixed: the train/held-out partition never depends on the run seed
POLARITY_MARGIN = 0.5


@lru_cache(maxsize=1)
def load_ratings() -> tuple[list[Row], list[Row]]:
    """(train pool, held-out pool) of {"id", "rating", "sentence"} rows, duplicates dropped."""
    path = pip_sdist_file(SOURCE, CHAIN, SHA256, "rt-ratings")
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


def _polarity_pools() -> Pools:
    train, heldout = load_ratings()
    return Pools(train=_polar(train), heldout=_polar(heldout))


register_task("rt-polarity")(Task(
    name="rt-polarity",
    description="Rotten Tomatoes sentences, |human rating| >= 0.5, MeZO's SST-2 template (offline)",
    load_pools=_polarity_pools,
    render=lambda row: sst2_example(row["sentence"], row["label"]),
))
