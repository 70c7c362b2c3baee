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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing demo folder's outputs.")] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Detect and repair the defects of the bundled sample stack; write the result and a before/after picture."""
    from emrepair.cli.console import progress_bar, result, warn
    from emrepair.pipelines.demo import run_demo

    from emrepair.cli.options import check_output_free

    for name in ("masks.h5", "repaired.h5"):  # what run_demo writes with create_output, checked before any work
        check_output_free(str(out / name), overwrite)
    with progress_bar("demo", enabled=not no_progress) as progress:
        summary = run_demo(out, overwrite=overwrite, progress=progress, warn=warn)
    result(summary.describe())
