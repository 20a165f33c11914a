"""Seeded 1000/500/1000 sampling with dev and test disjoint by construction.

Train and dev come from the train pool (one shuffle, two slices); test comes from the held-out
pool with a fixed seed, so every method and seed is scored on the same test examples. The DiZO
code scored its dev set as "test"; here the dev set only selects the checkpoint.
"""
from __future__ import annotations

import random

from benchmark.errors import BenchmarkError
from tasks.base import Splits, Task

TEST_SEED = 0


def sample_splits(task: Task, seed: int, num_train: int, num_dev: int, num_test: int) -> Splits:
    pools = task.load_pools()
    need = num_train + num_dev
    if len(pools.train) < need:
        raise BenchmarkError(
            f"task {task.name}: train pool has {len(pools.train)} rows, fewer than "
            f"num_train + num_dev = {need}; lower them with --set num_train=... num_dev=..."
        )
    train_rows = list(pools.train)
    random.Random(seed).shuffle(train_rows)
    test_rows = list(pools.heldout)
    random.Random(TEST_SEED).shuffle(test_rows)
    render = task.render
    return Splits(
        train=[render(r) for r in train_rows[:num_train]],
        dev=[render(r) for r in train_rows[num_train:need]],
        test=[render(r) for r in test_rows[:num_test]],  # all of it when the pool is smaller (SST-2: 872)
    )
