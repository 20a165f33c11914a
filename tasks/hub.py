"""Hub datasets through `datasets`, with a local-file escape hatch for air-gapped machines.

If the folder `$ZOBENCH_DATA_DIR/<task>/` exists, its `<split>.jsonl` files (same columns as the
hub dataset) are used instead of the hub; otherwise `load_dataset(path, name)` runs as usual, after
one quick check that the hub answers (HF_HUB_OFFLINE=1 skips it and reads the datasets cache).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from benchmark.core.errors import BenchmarkError, first_line
from tasks.base import Pools, Row


def _local_dir(task: str) -> Path | None:
    root = os.environ.get("ZOBENCH_DATA_DIR")
    return Path(root) / task if root else None


HUB_PROBE_S = 3.0


def check_hub(task: str) -> None:
    """Fail in one line, at once, when the hub is unreachable: `datasets` would first retry for about
    23 s (huggingface_hub's backoff). One TCP connect to HF_ENDPOINT's host, at most HUB_PROBE_S."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return  # the user asked for the cache: `datasets` answers from it at once
    hub = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((hub.hostname, hub.port or (443 if hub.scheme == "https" else 80)),
                                 timeout=HUB_PROBE_S).close()
    except OSError as exc:
        raise BenchmarkError(
            f"task {task}: the dataset hub {hub.netloc} is unreachable ({first_line(exc)}); offline, put its splits "
            f"as JSON lines under $ZOBENCH_DATA_DIR/{task}/, set HF_HUB_OFFLINE=1 to read the datasets cache, "
            "or use rt-polarity") from None


def hf_pools(task: str, path: str, name: str | None = None, train: str = "train", heldout: str = "validation",
             keep: Callable[[Row], bool] | None = None) -> Pools:
    """Train and held-out pools of a hub dataset; `keep` drops rows (SNLI's unlabeled -1 rows)."""
    import datasets

    datasets.disable_progress_bars()
    local = _local_dir(task)
    if local is not None and local.is_dir():
        files = {split: local / f"{split}.jsonl" for split in (train, heldout)}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise BenchmarkError(f"task {task}: missing {', '.join(missing)} (local files need both splits)")
        try:
            data = datasets.load_dataset("json", data_files={k: str(v) for k, v in files.items()})
        except Exception as exc:  # pyarrow/json raise many types on a malformed or empty file
            raise BenchmarkError(f"task {task}: cannot read the JSON-lines files in {local}: {first_line(exc)}") from None
    else:
        check_hub(task)
        try:
            data = datasets.load_dataset(path, name)
        except Exception as exc:  # the hub raises many types (ConnectionError, DatasetNotFoundError, ...)
            raise BenchmarkError(
                f"cannot load dataset {path}/{name} for task {task}: {first_line(exc)} "
                f"(offline? put {train}.jsonl/{heldout}.jsonl under $ZOBENCH_DATA_DIR/{task}/ or use rt-polarity)"
            ) from None
    rows = {split: [r for r in data[split] if keep is None or keep(r)] for split in (train, heldout)}
    return Pools(train=rows[train], heldout=rows[heldout])
