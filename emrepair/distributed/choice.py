"""Choosing the executor for ``--workers N --executor NAME`` (kept apart from ``executor.py``, which the daisy
executor builds on)."""

from __future__ import annotations

from emrepair.choices import ExecutorKind
from emrepair.distributed.executor import Executor, ProcessExecutor, SerialExecutor


def make_executor(workers: int, engine: str = "auto") -> Executor:
    """The executor for ``--workers``: serial for 1; daisy when asked for (or "auto" and installed); else processes."""
    if workers <= 1:
        return SerialExecutor()
    if engine in (ExecutorKind.AUTO, ExecutorKind.DAISY):
        from emrepair.distributed.daisy_executor import DaisyExecutor, daisy_available

        if daisy_available():
            return DaisyExecutor(workers)
        if engine == ExecutorKind.DAISY:
            from emrepair.errors import UsageError

            raise UsageError("daisy is not installed; pip install 'emrepair[distributed]' or use --executor process")
    return ProcessExecutor(workers)
