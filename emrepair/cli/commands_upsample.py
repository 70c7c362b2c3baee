"""`emrepair upsample-z`: synthesize sections between every pair to make a (near-)isotropic volume."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.options import (BatchSizeOpt, BlendOpt, DatasetOpt, DeviceOpt, DryRunOpt, LevelOpt, ModelOpt, NoProgressOpt,
                                   OverlapOpt, OverwriteOpt, PrecisionOpt, ReportInOpt, SaveReportOpt, TileSizeOpt, check_engine_choices)


@handle_errors
def upsample_z(
    path: Annotated[str, typer.Argument(help="Anisotropic volume to upsample (never modified).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Upsampled volume to write; its format follows the extension.")] = None,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Sections per original interval (integer >= 2): factor - 1 are synthesized between each pair.")] = None,
    target_z: Annotated[Optional[float], typer.Option("--target-z", help="Wanted z spacing in nm; the factor is the input z spacing / target, rounded.")] = None,
    model: ModelOpt = "auto",
    repair: Annotated[bool, typer.Option("--repair/--no-repair", help="Repair defective sections first (as `emrepair fix`), or use them as they are.")] = True,
    report: ReportInOpt = None,
    sections: Annotated[Optional[str], typer.Option("--sections", help="Repair these input sections, e.g. 5,9-11 (instead of detecting).")] = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume: 3 interpolated, 1/2 repaired (missing/fold), 0 original.")] = None,
    save_report: SaveReportOpt = None,
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    tile_size: TileSizeOpt = None,
    overlap: OverlapOpt = None,
    blend: BlendOpt = "gaussian",
    batch_size: BatchSizeOpt = 4,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Synthesize factor - 1 sections between every pair of sections, keeping the originals bit-identical."""
    from emrepair.cli.console import progress_bars, warn
    from emrepair.errors import UsageError
    from emrepair.pipelines.plan import parse_sections
    from emrepair.pipelines.upsample import UpsampleOptions, run_upsample

    check_engine_choices(blend, precision)
    if not repair and (report is not None or sections is not None):
        raise UsageError("--report and --sections choose what to repair; they cannot go with --no-repair")
    options = UpsampleOptions(
        factor=factor, target_z=target_z, model=model, repair=repair,
        sections=parse_sections(sections) if sections is not None else None,
        report_path=str(report) if report else None, masks_path=masks,
        summary_path=str(save_report) if save_report else None, dataset=dataset, level=level,
        tile_size=tile_size, overlap=overlap, blend=blend, batch_size=batch_size, device=device,
        precision=precision, overwrite=overwrite, dry_run=dry_run,
    )
    with progress_bars(enabled=not no_progress) as add_bar:
        result = run_upsample(path, output, options, progress=add_bar("pairs"), tile_progress=add_bar("tiles"),
                              detect_progress=add_bar("detect") if repair and not report and not sections else None,
                              warn=warn)
    render_upsample(result)


def render_upsample(result: Any) -> None:
    """Print the plan of an upsample-z run (dry run) or what it did."""
    from emrepair.cli.console import err_console

    def dims(shape: tuple[int, ...]) -> str:
        return " x ".join(str(s) for s in shape)

    def voxel(size: tuple[float, float, float] | None) -> str:
        return "unknown" if size is None else " x ".join(f"{v:g}" for v in size) + " nm"

    head = "plan (dry run, nothing written)" if result.dry_run else f"upsampled {result.input} -> {result.output}"
    err_console.print(f"[bold]{head}[/bold]", highlight=False)
    repaired = result.repaired_input
    lines = [
        result.factor.describe(),
        (f"shape {dims(result.input_shape)} -> {dims(result.output_shape)}; "
         f"voxel size {voxel(result.input_voxel_size)} -> {voxel(result.output_voxel_size)} (z, y, x)"),
        f"{result.interpolated_count} section(s) interpolated; "
        + (f"{len(repaired)} repaired first (input z {', '.join(map(str, repaired))})" if repaired
           else "nothing repaired"),
        (f"model {result.model} on {result.device}; {result.tiles_per_section} tile(s) per section; "
         f"~{result.memory_estimate_bytes / 2**20:.0f} MiB per batch, ~{result.host_memory_bytes / 2**20:.0f} MiB "
         "host memory per pair" + ("" if result.dry_run else f"; {result.seconds:.1f} s")),
    ]
    for line in lines:
        err_console.print(line, highlight=False)
