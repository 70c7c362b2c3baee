"""`emrepair upsample-z`: synthesize sections between every pair to make a (near-)isotropic volume."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from emrepair.cli.errors import EXIT_INTERRUPTED, handle_errors
from emrepair.cli.options import (
    BatchSizeOpt,
    BlendOpt,
    ContinueOpt,
    DatasetOpt,
    DeviceOpt,
    DryRunOpt,
    ExecutorOpt,
    LevelOpt,
    ModelOpt,
    NoProgressOpt,
    OverlapOpt,
    OverwriteOpt,
    PartOpt,
    PrecisionOpt,
    ReportInOpt,
    SaveReportOpt,
    TileSizeOpt,
    WorkersOpt,
    check_engine_choices,
    check_executor,
)


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
    continue_run: ContinueOpt = False,
    part: PartOpt = None,
    workers: WorkersOpt = 1,
    executor: ExecutorOpt = "auto",
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Synthesize factor - 1 sections between every pair of sections, keeping the originals bit-identical."""
    from emrepair.cli.commands_fix import terminate_as_interrupt
    from emrepair.cli.console import err_console, progress_bars, warn
    from emrepair.errors import UsageError
    from emrepair.pipelines.plan import parse_sections
    from emrepair.pipelines.upsample import UpsampleOptions, run_upsample
    from emrepair.runstate import CONTINUE_HINT, parse_part

    check_engine_choices(blend, precision)
    check_executor(executor)
    if not repair and (report is not None or sections is not None):
        raise UsageError("--report and --sections choose what to repair; they cannot go with --no-repair")
    options = UpsampleOptions(
        factor=factor, target_z=target_z, model=model, repair=repair,
        sections=parse_sections(sections) if sections is not None else None,
        report_path=str(report) if report else None, masks_path=masks,
        summary_path=str(save_report) if save_report else None, dataset=dataset, level=level,
        tile_size=tile_size, overlap=overlap, blend=blend, batch_size=batch_size, device=device,
        precision=precision, overwrite=overwrite, dry_run=dry_run, continue_run=continue_run,
        part=parse_part(part) if part is not None else None, workers=workers, executor=executor,
    )
    try:
        with terminate_as_interrupt(), progress_bars(enabled=not no_progress) as add_bar:
            detecting = repair and not report and not sections
            result = run_upsample(path, output, options, progress=add_bar("pairs"), tile_progress=add_bar("tiles"),
                                  detect_progress=add_bar("detect") if detecting else None, warn=warn)
    except KeyboardInterrupt:
        err_console.print(f"[red]interrupted[/red]: finished sections are kept; {CONTINUE_HINT} to go on",
                          highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    render_upsample(result)
    if not result.complete:
        err_console.print(f"share done; {result.blocks_left} block(s) left to other shares, the last one to "
                          f"finish writes {result.output}", highlight=False)


def render_upsample(result: Any) -> None:
    """Print the plan of an upsample-z run (dry run) or what it did."""
    from emrepair.cli.console import err_console

    def dims(shape: tuple[int, ...]) -> str:
        return " x ".join(str(s) for s in shape)

    def voxel(size: tuple[float, float, float] | None) -> str:
        return "unknown" if size is None else " x ".join(f"{v:g}" for v in size) + " nm"

    if not result.dry_run and not result.complete:
        return
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
        (f"model {result.model}" + (f" (repairs by {result.repair_model})" if result.repair_model else "")
         + f" on {result.device}; {result.tiles_per_section} tile(s) per section; "
         f"~{result.memory_estimate_bytes / 2**20:.0f} MiB per batch, ~{result.host_memory_bytes / 2**20:.0f} MiB "
         "host memory per pair" + ("" if result.dry_run else f"; {result.seconds:.1f} s")),
    ]
    for line in lines:
        err_console.print(line, highlight=False)
