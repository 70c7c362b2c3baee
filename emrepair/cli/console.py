"""Rich consoles and progress bars for the CLI: everything human-facing goes to stderr."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err_console = Console(stderr=True)
out_console = Console()

ProgressCallback = Callable[[int, int], None]


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str], ProgressCallback]]:
    """Yield a factory: ``factory(description)`` adds a Rich bar on stderr and returns its ``progress(done, total)``.

    Bars are hidden when ``enabled`` is false or stderr is not a terminal, so logs of batch jobs stay clean.
    """
    if not enabled or not err_console.is_terminal:
        yield lambda description: (lambda done, total: None)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:

        def add(description: str) -> ProgressCallback:
            task = progress.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return update

        yield add


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield a single ``progress(done, total)`` callback drawing one Rich bar on stderr."""
    with progress_bars(enabled) as add:
        yield add(description)


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
