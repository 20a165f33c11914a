"""Where converted models and fetched datasets are cached (override with ZOBENCH_CACHE)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    return Path(os.environ.get("ZOBENCH_CACHE", Path.home() / ".cache" / "zobench"))


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, building it first if absent.

    `build` writes into a private temp dir that is renamed into place, so concurrent workers never
    see a half-written cache and an interrupted build leaves nothing behind.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
