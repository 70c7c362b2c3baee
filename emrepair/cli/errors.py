"""Turn exceptions into one-line messages and exit codes, so users never see a traceback for bad input."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, TypeVar

import typer

from emrepair.errors import EmrepairError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130


def handle_errors(func: F) -> F:
    """Decorate a CLI command: known errors print ``error: ...`` and exit non-zero.

    Set ``EMREPAIR_DEBUG=1`` to see the full traceback of unexpected errors.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from emrepair.cli.console import err_console

        try:
            return func(*args, **kwargs)
        except EmrepairError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MemoryError:
            err_console.print("[red]error:[/red] out of memory; try a smaller --tile-size or --batch-size",
                              highlight=False)
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - last line of defence against tracebacks
            if os.environ.get("EMREPAIR_DEBUG"):
                raise
            message = str(exc).splitlines()[0] if str(exc) else ""
            err_console.print(
                f"[red]error:[/red] {type(exc).__name__}: {message} (set EMREPAIR_DEBUG=1 for the traceback)",
                highlight=False, soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal."""
    return sys.stderr.isatty()
