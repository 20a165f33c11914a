"""One exception type for everything a user can get wrong.

The CLI turns a `BenchmarkError` into a single `error: ...` line and a non-zero exit, so every
check that guards user input raises this instead of letting a traceback surface mid-run.
"""


class BenchmarkError(Exception):
    """A user-facing error: its message is the whole explanation, one line."""


def first_line(exc: BaseException) -> str:
    """The first line of a library's exception message (or its type when empty), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
