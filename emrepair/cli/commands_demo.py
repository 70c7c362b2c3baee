"""`emrepair demo`: detect and repair the bundled sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.options import NoProgressOpt


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the demo's outputs.")] = Path("emrepair-demo"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing demo folder's outputs.")] = True,
    no_progress: NoProgressOpt = False,
) -> None:
    """Detect and repair the defects of the bundled sample stack; write the result and a before/after picture."""
    from emrepair.cli.console import err_console, progress_bar, warn
    from emrepair.pipelines.demo import run_demo

    with progress_bar("demo", enabled=not no_progress) as progress:
        summary = run_demo(out, overwrite=overwrite, progress=progress, warn=warn)
    err_console.print(summary.describe(), highlight=False)
