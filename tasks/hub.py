"""Hub datasets through `datasets`, with a local-file escape hatch for air-gapped machines.

If `$ZOBENCH_DATA_DIR/<task>/<split>.jsonl` exists (same columns as the hub dataset), it is
used instead of the hub; otherwise `load_dataset(path, name)` runs as usual.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from benchmark.errors import BenchmarkError
from tasks.base import Pools, Row


def _local_dir(task: str) -> Path | None:
    root = os.environ.get("ZOBENCH_DATA_DIR")
    return Path(root) / task if root else None


def hf_pools(task: str, path: str, name: str | None = None, train: str = "train", heldout: str = "validation",
             keep: Callable[[Row], bool] | None = None) -> Pools:
    """Train and held-out pools of a hub dataset; `keep` drops rows (SNLI's unlabeled -1 rows)."""
    import datasets

    datasets.disable_progress_bars()
    local = _local_dir(task)
    try:
        if local is not None and (local / f"{train}.jsonl").is_file():
            files = {split: str(local / f"{split}.jsonl") for split in (train, heldout)}
            data = datasets.load_dataset("json", data_files=files)
        else:
            data = datasets.load_dataset(path, name)
    except Exception as exc:  # the hub raises many types (ConnectionError, DatasetNotFoundError, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchmarkError(
            f"cannot load dataset {path}/{name} for task {task}: {first} "
            f"(offline? put {train}.jsonl/{heldout}.jsonl under $ZOBENCH_DATA_DIR/{task}/ or use rt-polarity)"
        ) from None
    rows = {split: [r for r in data[split] if keep is None or keep(r)] for split in (train, heldout)}
    return Pools(train=rows[train], heldout=rows[heldout])
