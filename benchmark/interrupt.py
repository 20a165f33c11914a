"""Ctrl-C as a request, for `benchmark run` and study workers alike.

The first Ctrl-C sets a flag that the training loop checks after each step (and evaluation), so the
run ends between steps: its MLflow run KILLED with reason `interrupted`, a study's trial put back in
the queue. Raising from the signal handler itself could land in a garbage-collection callback,
where Python drops it (seen with SQLAlchemy); a second Ctrl-C stops at once.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class Interrupted(KeyboardInterrupt):
    """Raised between steps after a Ctrl-C (the one line saying so is already printed)."""


class Interrupt:
    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("interrupted: stopping after this step (Ctrl-C again to stop now)", file=sys.stderr)

    def check(self) -> None:
        if self.requested:
            raise Interrupted

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
