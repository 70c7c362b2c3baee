"""`emrepair upsample-z`: synthesize sections between every pair to make a (near-)isotropic volume."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from emrepair.cli import options as opt
from emrepair.cli.errors import handle_errors


@handle_errors
def upsample_z(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Anisotropic volume to upsample (never modified).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Upsampled volume to write; its format follows the extension.")] = None,
    factor: Annotated[Optional[int], typer.Option("--factor", help="Sections per original interval (integer >= 2): factor - 1 are synthesized between each pair.")] = None,
    target_z: Annotated[Optional[float], typer.Option("--target-z", help="Wanted z spacing in nm; the factor is the input z spacing / target, rounded.")] = None,
    model: opt.ModelOpt = "auto",
    repair: Annotated[bool, typer.Option("--repair/--no-repair", help="Repair defective sections first (as `emrepair fix`), or use them as they are.")] = True,
    report: opt.ReportInOpt = None,
    sections: Annotated[Optional[str], typer.Option("--sections", help="Repair these input sections, e.g. 5,9-11 (instead of detecting).")] = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume: 9 interpolated; on repaired sections 1 missing, 2 fold band, 3 lost region and seam (pixels that differ); 0 original.")] = None,
    save_report: opt.SaveReportOpt = None,
    dataset: opt.DatasetOpt = None,
    level: opt.LevelOpt = None,
    skip_unreadable: opt.SkipUnreadableOpt = False,
    tile_size: opt.TileSizeOpt = None,
    overlap: opt.OverlapOpt = None,
    blend: opt.BlendOpt = "gaussian",
    batch_size: opt.BatchSizeOpt = 4,
    device: opt.DeviceOpt = "auto",
    precision: opt.PrecisionOpt = "auto",
    continue_run: opt.ContinueOpt = False,
    part: opt.PartOpt = None,
    workers: opt.WorkersOpt = 1,
    executor: opt.ExecutorOpt = "auto",
    dry_run: opt.DryRunOpt = False,
    overwrite: opt.OverwriteOpt = False,
    as_json: opt.JsonOpt = False,
    no_progress: opt.NoProgressOpt = False,
) -> None:
    """Synthesize factor - 1 sections between every pair of sections, keeping the originals bit-identical."""
    params = dict(locals())
    from emrepair.api import upsample_z as upsample_volume
    from emrepair.cli.commands_fix import block_run_progress, check_outputs, print_json
    from emrepair.cli.console import warn
    from emrepair.cli.render import render_share_left, render_upsample
    from emrepair.errors import UsageError
    from emrepair.pipelines.upsample import UpsampleOptions

    opt.check_engine_choices(blend, precision)
    opt.check_executor(executor)
    if not repair and (report is not None or sections is not None):
        raise UsageError("--report and --sections choose what to repair; they cannot go with --no-repair")
    opt.check_device(device)
    check_outputs(params)
    options = UpsampleOptions(factor=factor, target_z=target_z, model=model, repair=repair,
                              **opt.run_option_fields(params))
    with block_run_progress(no_progress) as add_bar:
        detecting = repair and not report and not sections
        result = upsample_volume(path, output, options=options, progress=add_bar("pairs"),
                                 tile_progress=add_bar("tiles", every_percent=None),
                                 detect_progress=add_bar("detect") if detecting else None, warn=warn)
    if not print_json(result, as_json or opt.is_stdout(save_report)):
        render_upsample(result)
    render_share_left(result)

