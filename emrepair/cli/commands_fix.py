"""`emrepair fix`: repair damaged sections into a new volume (resumable, in shares or over worker processes)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Annotated, Any, Callable, Iterator, Optional

import typer

from emrepair.cli import options as opt
from emrepair.cli.errors import EXIT_INTERRUPTED, handle_errors
from emrepair.cli.lost_options import (MinLostOpt, MissingFractionOpt, NoiseAutocorrOpt, RepairPrecipitatesOpt,
                                       detect_config)


@handle_errors
def fix(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Volume to repair (never modified, unless --in-place).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Repaired volume to write; its format follows the extension.")] = None,
    model: opt.ModelOpt = "auto",
    fold_model: Annotated[str, typer.Option("--fold-model", help="Fold-aware model for folded sections (keeps their real pixels away from the band); 'auto' is sff when its weights are present, 'none' interpolates folded sections whole.")] = "auto",
    report: opt.ReportInOpt = None,
    sections: opt.SectionsOpt = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume of the synthesized pixels.")] = None,
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
    in_place: Annotated[bool, typer.Option("--in-place", help="Write the repaired sections into the input (Zarr, OME-Zarr, HDF5 or a TIFF folder), keeping a backup for --undo.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Restore the sections replaced by an earlier --in-place repair of PATH from its backup.")] = False,
    dry_run: opt.DryRunOpt = False,
    overwrite: opt.OverwriteOpt = False,
    as_json: opt.JsonOpt = False,
    no_progress: opt.NoProgressOpt = False,
    min_lost_fraction: MinLostOpt = None,
    missing_fraction: MissingFractionOpt = None,
    noise_autocorr: NoiseAutocorrOpt = None,
    repair_precipitates: RepairPrecipitatesOpt = False,
) -> None:
    """Repair every damaged section from its nearest good neighbours into a new volume."""
    params = dict(locals())
    from emrepair.api import fix as fix_volume
    from emrepair.cli.console import result as show
    from emrepair.cli.console import warn
    from emrepair.cli.render import render_fix, render_share_left
    from emrepair.errors import UsageError
    from emrepair.pipelines.fix import FixOptions

    opt.check_engine_choices(blend, precision)
    opt.check_executor(executor)
    if undo:
        from emrepair.pipelines.inplace import undo_in_place

        restored = undo_in_place(path, dataset=dataset, level=level)
        show(f"restored {len(restored)} section(s) of {path} from its backup")
        return
    opt.check_device(device)
    check_outputs(params)
    options = FixOptions(model=model, fold_model=fold_model, **opt.run_option_fields(params),
                         detect_config=detect_config(min_lost_fraction, missing_fraction, noise_autocorr),
                         repair_precipitates=repair_precipitates)
    with block_run_progress(no_progress) as add_bar:
        if in_place:
            from emrepair.pipelines.inplace import run_fix_in_place

            if output is not None:
                raise UsageError("--in-place writes into the input; give no -o")
            result = run_fix_in_place(path, options, progress=add_bar("sections"),
                                      tile_progress=add_bar("tiles", every_percent=None), warn=warn)
        else:
            result = fix_volume(path, output, options=options, progress=add_bar("sections"),
                                tile_progress=add_bar("tiles", every_percent=None), warn=warn)
    if not print_json(result, as_json or opt.is_stdout(save_report)):
        render_fix(result)
    render_share_left(result)


def check_outputs(params: dict[str, Any]) -> None:
    """Refuse existing -o and --masks outputs of a blockwise run (fix, upsample-z) before any work; a resumed
    (--continue) run or a share (--part) finds its own partial output instead."""
    from emrepair.io.output_guard import guard_outputs, target

    if params["continue_run"] or params["part"] is not None or params["dry_run"]:
        return
    # The input, overlaps and links first: "output exists (use --overwrite)" must never be said of the input.
    guard_outputs([params["path"]], [target("-o", params["output"], may_exist=True),
                                     target("--masks", params["masks"], may_exist=True)], overwrite=False)
    for path in (params["output"], params["masks"]):
        opt.check_output_free(path, params["overwrite"])


def print_json(result: Any, wanted: bool) -> bool:
    """Print a blockwise run's record (as --save-report writes it) on stdout when --json or --save-report -
    asked for it; return whether it did."""
    if wanted:
        import json

        from emrepair.cli.console import echo_json

        echo_json(json.dumps(result.to_dict(), indent=2))
    return wanted


@contextlib.contextmanager
def block_run_progress(no_progress: bool) -> Iterator[Callable[[str], Any]]:
    """Progress bars (``add_bar(name)``) around a blockwise run (fix, upsample-z); Ctrl-C or SIGTERM ends it with
    what to do next and exit code 130."""
    from emrepair.cli.console import progress_bars
    from emrepair.cli.render import render_interrupted

    try:
        with terminate_as_interrupt(), progress_bars(enabled=not no_progress) as add_bar:
            yield add_bar
    except KeyboardInterrupt:
        render_interrupted()
        raise typer.Exit(EXIT_INTERRUPTED) from None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (e.g. a batch scheduler's time limit) like Ctrl-C while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
