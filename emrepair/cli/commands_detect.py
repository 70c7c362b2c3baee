"""`emrepair detect`: find missing sections and folds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.options import DatasetOpt, LevelOpt, NoProgressOpt


@handle_errors
def detect(
    path: Annotated[str, typer.Argument(help="Volume to inspect.")],
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the JSON report here.")] = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume (1 missing, 2 fold).")] = None,
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Write one PNG per defective section here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --masks output.")] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Find missing sections and support-film folds; print a table, optionally write a report, masks and previews."""
    from emrepair.cli.console import progress_bar
    from emrepair.cli.render import render_detection
    from emrepair.pipelines.detect import run_detect

    with progress_bar("detect", enabled=not no_progress) as progress:
        result = run_detect(path, dataset=dataset, level=level, report_path=report, masks_path=masks,
                            preview_dir=preview, overwrite=overwrite, progress=progress)
    render_detection(result)
