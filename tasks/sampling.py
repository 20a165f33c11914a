"""Seeded sampling with dev and test disjoint by construction.

Train and dev come from the train pool (one seeded shuffle, two slices); test comes from the
held-out pool with a fixed seed, so every method and seed is scored on the same test examples.
The DiZO code scored its dev set as "test"; here the dev set only selects the checkpoint.
Two regimes: fixed counts (MeZO's 1000/500/1000 for OPT/Llama) and k examples per class for
train and again for dev (LM-BFF's k-shot for RoBERTa, k = 16 or 512, seeds `KSHOT_SEEDS`).
"""
from __future__ import annotations

import random

from benchmark.core.errors import BenchmarkError
from tasks.base import Example, Pools, Render, Splits, Task

TEST_SEED = 0
KSHOT_SEEDS = (13, 21, 42, 87, 100)  # LM-BFF's and MeZO's five data seeds


def _test(pools: Pools, render: Render, num_test: int) -> list[Example]:
    rows = list(pools.heldout)
    random.Random(TEST_SEED).shuffle(rows)
    return [render(r) for r in rows[:num_test]]  # all of it when the pool is smaller (SST-2: 872)


def sample_splits(task: Task, render: Render, seed: int, num_train: int | None = None, num_dev: int | None = None,
                  num_test: int | None = None, k: int | None = None) -> Splits:
    """Fixed counts (None: the task's declared sizes), or `k` per class when k is given."""
    num_test = task.sizes.test if num_test is None else num_test
    pools = task.load_pools()
    if task.file and num_test > len(pools.heldout):  # a built-in task may declare a smaller pool; a file may not
        raise BenchmarkError(f"task {task.name}: num_test={num_test} but the test split of {task.file} has "
                             f"{len(pools.heldout)} rows; lower it with --set num_test=...")
    if k is not None:
        return _k_shot(task, pools, render, seed, k, num_test)
    num_train = task.sizes.train if num_train is None else num_train
    num_dev = task.sizes.dev if num_dev is None else num_dev
    pool = list(pools.train)
    need = num_train + num_dev
    if len(pool) < need:
        raise BenchmarkError(
            f"task {task.name}: train pool has {len(pool)} rows, fewer than "
            f"num_train + num_dev = {need}; lower them with --set num_train=... num_dev=..."
        )
    random.Random(seed).shuffle(pool)
    return Splits(train=[render(r) for r in pool[:num_train]], dev=[render(r) for r in pool[num_train:need]],
                  test=_test(pools, render, num_test))


def check_k(task: Task, k: int | None) -> None:
    if k is not None and task.generation:
        raise BenchmarkError(f"k={k}: task {task.name} is generation; k-shot per class needs classes (unset k)")


def _k_shot(task: Task, pools: Pools, render: Render, seed: int, k: int, num_test: int) -> Splits:
    """k per class for train, then k per class for dev, from one seeded shuffle of the train pool."""
    check_k(task, k)
    pool = list(pools.train)
    random.Random(seed).shuffle(pool)
    train: list[Example] = []
    dev: list[Example] = []
    taken: dict[int, int] = {}
    classes = None
    for row in pool:
        example = render(row)
        classes = classes or len(example.candidates)
        n = taken.get(example.gold, 0)
        if n < 2 * k:
            (train if n < k else dev).append(example)
            taken[example.gold] = n + 1
            if len(taken) == classes and all(v == 2 * k for v in taken.values()):
                break
    short = {c: n for c, n in taken.items() if n < 2 * k} | {c: 0 for c in range(classes or 0) if c not in taken}
    if short:
        raise BenchmarkError(f"task {task.name}: k={k} needs {2 * k} train-pool rows per class (train + dev); "
                             f"class sizes short of that: {short}")
    return Splits(train=train, dev=dev, test=_test(pools, render, num_test))
