"""The ``emrepair`` command line: a thin Typer layer over the pipelines.

Heavy modules (torch, zarr, h5py, OpenCV) are imported inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from emrepair import __version__
from emrepair.cli.errors import handle_errors

app = typer.Typer(
    name="emrepair",
    help="Find and repair missing sections and support-film folds in serial-section EM volumes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Dataset or array path inside an HDF5/Zarr container.")]
LevelOpt = Annotated[Optional[int], typer.Option("--level", help="OME-Zarr multiscale level (default 0).", min=0)]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


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


@app.command()
@handle_errors
def info(
    path: Annotated[str, typer.Argument(help="Volume: .h5[/dataset], .zarr, .ome.zarr, .tif, or a folder of sections.")],
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """Show format, shape, dtype, chunks and voxel size of a volume."""
    from emrepair.cli.render import render_info
    from emrepair.io import open_volume

    with open_volume(path, dataset=dataset, level=level) as vol:
        summary = vol.info.to_dict()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        render_info(summary)


@app.command()
@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """List the repair models, whether trained weights are present, and what they were trained on."""
    from emrepair.cli.render import render_models
    from emrepair.models import list_models

    rows = [
        {"name": s.name, "learned": s.learned, "weights": s.has_weights(), "trained_on": s.trained_on(),
         "description": s.description}
        for s in list_models()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        render_models(rows)


@app.command()
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


@app.command()
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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
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


@app.command()
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


def main() -> None:
    """Entry point of the ``emrepair`` console script."""
    app()


if __name__ == "__main__":
    main()
