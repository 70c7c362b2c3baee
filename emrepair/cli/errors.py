"""Turn exceptions into one-line messages and exit codes, so users never see a traceback for bad input."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

from emrepair.errors import EmrepairError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results, warnings and errors: no progress, no notes.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also print the traceback of an unexpected error.")]
LogFileOpt = Annotated[Optional[Path], typer.Option("--log-file", help="Append everything the command prints (results, progress, warnings, errors) to this file.", dir_okay=False)]

_COMMON = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
           for name, annotation, default in (("quiet", QuietOpt, False), ("verbose", VerboseOpt, False),
                                             ("log_file", LogFileOpt, None))]


def handle_errors(func: F) -> F:
    """Decorate a CLI command: known errors print ``error: ...`` and exit non-zero.

    Adds ``--quiet``, ``--verbose`` and ``--log-file`` to the command. ``--verbose`` (or ``EMREPAIR_DEBUG=1``)
    shows the full traceback of unexpected errors.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool = False, verbose: bool = False, log_file: Optional[Path] = None,
                **kwargs: Any) -> Any:
        from emrepair.cli.console import close_log, configure

        try:
            configure(quiet=quiet, verbose=verbose, log_file=log_file)
            return _run(func, verbose, *args, **kwargs)
        except EmrepairError as exc:  # a bad --log-file
            from emrepair.cli.console import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        finally:
            close_log()

    signature = inspect.signature(func, eval_str=True)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *_COMMON])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**typing.get_type_hints(func, include_extras=True),
                               **{p.name: p.annotation for p in _COMMON}}
    return wrapper  # type: ignore[return-value]


def _run(func: Callable[..., Any], verbose: bool, *args: Any, **kwargs: Any) -> Any:
    """Call a command, turning every error into a one-line message and an exit code."""
    from emrepair.cli.console import err_console, error

    try:
        with one_line_warnings():
            return func(*args, **kwargs)
    except EmrepairError as exc:
        error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print(styled_red("interrupted"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except MemoryError:
        error("out of memory; try a smaller --tile-size or --batch-size")
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - last line of defence against tracebacks
        if os.environ.get("EMREPAIR_DEBUG"):
            raise
        if verbose:
            import traceback

            err_console.print(traceback.format_exc().rstrip())
        message = str(exc).splitlines()[0] if str(exc) else ""
        where = f" on {kwargs['path']}" if kwargs.get("path") else ""
        hint = "" if verbose else " (--verbose or EMREPAIR_DEBUG=1 shows the traceback)"
        error(f"internal error in `emrepair {func.__name__.removesuffix('_command').replace('_', '-')}`{where}: "
              f"{type(exc).__name__}: {message}; this is a bug in emrepair, please report it with the command "
              f"and its --verbose output{hint}")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Print each Python warning raised inside (e.g. emrepair's InputWarning) as one ``warning:`` line."""
    from emrepair.cli.console import warn

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *rest, **kw: warn(str(message).splitlines()[0] if str(message) else "")
        yield


def styled_red(text: str) -> Any:
    """``text`` in red, never read as markup."""
    from emrepair.cli.console import styled

    return styled((text, "red"))


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal."""
    return sys.stderr.isatty()
