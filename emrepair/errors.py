"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


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
