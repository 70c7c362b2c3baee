"""`emrepair fix`: repair damaged sections into a new volume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.options import DatasetOpt, LevelOpt, NoProgressOpt, OverwriteOpt


@handle_errors
def fix(
    path: Annotated[str, typer.Argument(help="Volume to repair (never modified).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Repaired volume to write; its format follows the extension.")] = None,
    model: Annotated[str, typer.Option("--model", help="Model name (see `emrepair models`) or a checkpoint path; 'auto' picks the best with trained weights.")] = "auto",
    report: Annotated[Optional[Path], typer.Option("--report", help="Repair the defects listed in this `emrepair detect --report` file.")] = None,
    sections: Annotated[Optional[str], typer.Option("--sections", help="Repair these sections, e.g. 5,9-11 (instead of detecting).")] = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume of the synthesized pixels.")] = None,
    save_report: Annotated[Optional[Path], typer.Option("--save-report", help="Write a JSON record of what was done.")] = None,
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", min=16, help="Tile edge in pixels (default: fits the device).")] = None,
    overlap: Annotated[Optional[int], typer.Option("--overlap", min=0, help="Tile overlap in pixels (default: from the model's halo).")] = None,
    blend: Annotated[str, typer.Option("--blend", help="Tile blending: gaussian, hann or crop.")] = "gaussian",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per network pass.")] = 4,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (falls back to CPU with a warning).")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16 (autocast on CUDA only).")] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and write nothing.")] = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Repair every damaged section from its nearest good neighbours into a new volume."""
    from emrepair.cli.console import progress_bars, warn
    from emrepair.cli.render import render_fix
    from emrepair.errors import UsageError
    from emrepair.pipelines.fix import FixOptions, run_fix
    from emrepair.pipelines.plan import parse_sections

    if blend not in ("gaussian", "hann", "crop"):
        raise UsageError(f"--blend must be gaussian, hann or crop, not {blend!r}")
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision must be auto, fp32, bf16 or fp16, not {precision!r}")
    options = FixOptions(
        model=model, sections=parse_sections(sections) if sections is not None else None,
        report_path=str(report) if report else None, masks_path=masks,
        summary_path=str(save_report) if save_report else None, dataset=dataset, level=level,
        tile_size=tile_size, overlap=overlap, blend=blend, batch_size=batch_size, device=device,
        precision=precision, overwrite=overwrite, dry_run=dry_run,
    )
    with progress_bars(enabled=not no_progress) as add_bar:
        result = run_fix(path, output, options, progress=add_bar("sections"), tile_progress=add_bar("tiles"),
                         warn=warn)
    render_fix(result)
