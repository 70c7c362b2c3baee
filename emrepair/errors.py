"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class EmrepairError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    ``exit_code`` is 1 for runtime problems and 2 for bad usage (Typer's convention).
    """

    exit_code: int = 1


class InputError(EmrepairError):
    """The input volume is missing, unreadable, malformed or of an unsupported shape or format."""


class OutputError(EmrepairError):
    """The output cannot be written (exists without --overwrite, folder missing, no permission, disk full)."""


class UsageError(EmrepairError):
    """Command-line arguments that contradict each other or are out of range."""

    exit_code = 2


class InputWarning(UserWarning):
    """Something odd about the input that does not stop the run (mostly unwritten chunks, skipped unreadable
    section files, weights that are not the shipped ones); the CLI prints it as one ``warning:`` line."""


def one_line_errors(main: Callable[..., None]) -> Callable[..., None]:
    """Decorate the ``main`` of a ``python -m`` entry point that is not a Typer command: an
    :class:`EmrepairError` prints ``error: ...`` on stderr and exits with its code, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            main(*args, **kwargs)
        except EmrepairError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None

    return wrapper
