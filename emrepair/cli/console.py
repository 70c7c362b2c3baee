"""The CLI's two consoles and its output settings.

Results (tables, ``--json``, reports to ``-``) go to stdout through ``out_console``; progress, notes, warnings and
errors go to stderr through ``err_console``. Neither reads Rich markup in the text it is given, so user-supplied
strings (paths such as ``dmg[red].h5``) print exactly; styles are applied with ``styled``. Off a terminal, lines are
never wrapped. ``configure`` applies ``--quiet``, ``--verbose`` and ``--log-file``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from rich.console import Console
from rich.control import Control
from rich.text import Text

from emrepair.callbacks import ProgressCallback

PIPE_WIDTH = 200  # columns for tables when stdout/stderr is a file or a pipe (COLUMNS overrides)


@dataclass
class Settings:
    """Output settings of the running command."""

    quiet: bool = False
    verbose: bool = False
    log: Console | None = None
    log_file: IO[str] | None = None


settings = Settings()


class CliConsole(Console):
    """A Rich console without markup or highlighting that does not wrap off a terminal and copies to --log-file."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - Console's own name
        """Print as Rich does (soft-wrapped and tables up to PIPE_WIDTH wide when not a terminal) and append the
        same text to the log file."""
        if "COLUMNS" not in os.environ:
            self._width = None if self.is_terminal else PIPE_WIDTH
        if not self.is_terminal:
            kwargs["soft_wrap"] = True
        super().print(*objects, **kwargs)
        shown = [o for o in objects if not isinstance(o, Control)]  # a live display's cursor moves stay out
        if settings.log is not None and shown:
            settings.log.print(*shown, **{**kwargs, "soft_wrap": True})
            settings.log.file.flush()


err_console = CliConsole(stderr=True, markup=False, highlight=False, emoji=False)
out_console = CliConsole(markup=False, highlight=False, emoji=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and ``(text, style)`` pairs; no part is ever read as markup."""
    return Text.assemble(*parts)


def configure(quiet: bool = False, verbose: bool = False, log_file: Path | None = None) -> None:
    """Apply ``--quiet`` (no progress or notes), ``--verbose`` (tracebacks of unexpected errors) and
    ``--log-file`` (append every line the command prints, without colours)."""
    from emrepair.errors import OutputError

    close_log()
    settings.quiet, settings.verbose = quiet, verbose
    if log_file is not None:
        try:
            handle = Path(log_file).open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write the log file {log_file}: {exc.strerror or exc}") from None
        settings.log_file = handle
        settings.log = Console(file=handle, markup=False, highlight=False, emoji=False, no_color=True,
                               width=200, soft_wrap=True)


def close_log() -> None:
    """Close the --log-file of the previous command, if any."""
    if settings.log_file is not None:
        settings.log_file.close()
    settings.log, settings.log_file = None, None


def note(message: str) -> None:
    """Print a message on stderr (hidden by --quiet)."""
    if not settings.quiet:
        err_console.print(message)


def warn(message: str) -> None:
    """Print a one-line warning on stderr (shown even with --quiet)."""
    err_console.print(styled(("warning:", "yellow"), " ", message))


def error(message: str) -> None:
    """Print a one-line ``error:`` message on stderr."""
    err_console.print(styled(("error:", "red"), " ", message))


def log_only(message: str) -> None:
    """Append a line to the --log-file only (the plain twin of a progress bar drawn on the terminal)."""
    if settings.log is not None:
        settings.log.print(message)
        settings.log.file.flush()


def result(*objects: Any) -> None:
    """Print a result (a table or a summary line) on stdout."""
    out_console.print(*objects)


def echo_json(text: str) -> None:
    """Print JSON text on stdout as it is (and into the log file)."""
    import typer

    typer.echo(text)
    if settings.log is not None:
        settings.log.file.write(text + "\n")
        settings.log.file.flush()


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str], ProgressCallback]]:
    """Yield a factory: ``factory(description, every_percent=5.0)`` returns a ``progress(done, total)`` callback.

    On a terminal each task is a Rich bar on stderr; otherwise (Slurm, nohup, a pipe) a plain line on stderr every
    5 % (``every_percent``; None: only every 30 s) or 30 s with done/total, rate and ETA. Nothing is shown when
    ``enabled`` is false or with --quiet.
    """
    from emrepair.cli.progress import PlainProgress

    if not enabled or settings.quiet:
        yield lambda description, every_percent=5.0: (lambda done, total, *extra: None)
        return
    if not err_console.is_terminal:
        yield lambda description, every_percent=5.0: PlainProgress(description, note, every_percent=every_percent)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:

        def add(description: str, every_percent: float | None = 5.0) -> ProgressCallback:
            task = progress.add_task(description, total=None)
            logged = PlainProgress(description, log_only, every_percent=every_percent) if settings.log else None

            def update(done: int, total: int, *extra: str) -> None:
                progress.update(task, completed=done, total=total)
                if logged is not None:  # the bar is not text: --log-file gets plain lines
                    logged(done, total, *extra)

            return update

        yield add


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield a single ``progress(done, total)`` callback (a Rich bar, or plain lines off a terminal)."""
    with progress_bars(enabled) as add:
        yield add(description)
