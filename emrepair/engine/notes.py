"""Warnings a pipeline run collects for its report and hands on to the caller as they come."""

from __future__ import annotations

import warnings
from typing import Any

from emrepair.callbacks import WarnCallback


class Notes(list):
    """A list of warning lines that is also the ``note(message)`` callback: each line is kept (for the run's
    report) and passed to ``warn`` when given (the CLI prints it)."""

    def __init__(self, warn: WarnCallback | None = None) -> None:
        super().__init__()
        self._warn = warn

    def __call__(self, message: str) -> None:
        self.append(message)
        if self._warn is not None:
            self._warn(message)


def resolve_device_noting(spec: str, note: WarnCallback) -> Any:
    """``emrepair.engine.resolve_device(spec)``, its warnings (e.g. the CUDA fallback) turned into notes."""
    from emrepair.engine import resolve_device

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = resolve_device(spec)
    for w in caught:
        note(str(w.message))
    return device
