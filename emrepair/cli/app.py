"""The ``emrepair`` command line: a thin Typer layer over the pipelines.

Each command lives in its own ``commands_*.py`` module; heavy modules (torch, zarr, h5py, OpenCV) are imported
inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from emrepair.cli.commands_demo import demo
from emrepair.cli.commands_detect import detect
from emrepair.cli.commands_fix import fix
from emrepair.cli.commands_info import info, models
from emrepair.cli.commands_train import eval_command, train_command
from emrepair.cli.commands_upsample import upsample_z
from emrepair.version import __version__

app = typer.Typer(
    name="emrepair",
    help="Find and repair missing sections and support-film folds in serial-section EM volumes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # help texts are plain text: brackets such as .h5[/dataset] print as written
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"emrepair {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """emrepair: detect, repair and upsample serial-section EM volumes."""


app.command("info")(info)
app.command("detect")(detect)
app.command("fix")(fix)
app.command("upsample-z")(upsample_z)
app.command("train")(train_command)
app.command("eval")(eval_command)
app.command("models")(models)
app.command("demo")(demo)


def main() -> None:
    """Entry point of the ``emrepair`` console script.

    Click's usage errors (a bad number, an unknown option) print as one ``error:`` line with a pointer to the
    command's help, not the usage block, and exit 2.
    """
    import sys

    # Typer 0.29 carries its own copy of Click: take the exception classes from Typer's, whichever it is.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `emrepair`: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        where = exc.ctx.command_path if exc.ctx is not None else "emrepair"
        message = " ".join(exc.format_message().split())
        print(f"error: {message} (see '{where} -h')", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click_exception as exc:
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
