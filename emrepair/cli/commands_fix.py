"""`emrepair fix`: repair damaged sections into a new volume (resumable, in shares or over worker processes)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Annotated, Any, Iterator, Optional

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
    SectionsOpt,
    TileSizeOpt,
    WorkersOpt,
    check_engine_choices,
    check_executor,
)


@handle_errors
def fix(
    path: Annotated[str, typer.Argument(help="Volume to repair (never modified, unless --in-place).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Repaired volume to write; its format follows the extension.")] = None,
    model: ModelOpt = "auto",
    fold_model: Annotated[str, typer.Option("--fold-model", help="Fold-aware model for folded sections (keeps their real pixels away from the band); 'auto' is sff when its weights are present, 'none' interpolates folded sections whole.")] = "auto",
    report: ReportInOpt = None,
    sections: SectionsOpt = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume of the synthesized pixels.")] = None,
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
    in_place: Annotated[bool, typer.Option("--in-place", help="Write the repaired sections into the input (Zarr, OME-Zarr, HDF5 or a TIFF folder), keeping a backup for --undo.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Restore the sections replaced by an earlier --in-place repair of PATH from its backup.")] = False,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Repair every damaged section from its nearest good neighbours into a new volume."""
    from emrepair.cli.console import err_console, progress_bars, warn
    from emrepair.cli.render import render_fix
    from emrepair.errors import UsageError
    from emrepair.pipelines.fix import FixOptions, run_fix
    from emrepair.pipelines.plan import parse_sections
    from emrepair.runstate import CONTINUE_HINT, parse_part

    check_engine_choices(blend, precision)
    check_executor(executor)
    if undo:
        from emrepair.pipelines.inplace import undo_in_place

        restored = undo_in_place(path, dataset=dataset, level=level)
        err_console.print(f"restored {len(restored)} section(s) of {path} from its backup", highlight=False)
        return
    options = FixOptions(
        model=model, fold_model=fold_model, sections=parse_sections(sections) if sections is not None else None,
        report_path=str(report) if report else None, masks_path=masks,
        summary_path=str(save_report) if save_report else None, dataset=dataset, level=level,
        tile_size=tile_size, overlap=overlap, blend=blend, batch_size=batch_size, device=device,
        precision=precision, overwrite=overwrite, dry_run=dry_run, continue_run=continue_run,
        part=parse_part(part) if part is not None else None, workers=workers, executor=executor,
    )
    try:
        with terminate_as_interrupt(), progress_bars(enabled=not no_progress) as add_bar:
            if in_place:
                from emrepair.pipelines.inplace import run_fix_in_place

                if output is not None:
                    raise UsageError("--in-place writes into the input; give no -o")
                result = run_fix_in_place(path, options, progress=add_bar("sections"),
                                          tile_progress=add_bar("tiles"), warn=warn)
            else:
                result = run_fix(path, output, options, progress=add_bar("sections"),
                                 tile_progress=add_bar("tiles"), warn=warn)
    except KeyboardInterrupt:
        err_console.print(f"[red]interrupted[/red]: finished sections are kept; {CONTINUE_HINT} to go on",
                          highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    render_fix(result)
    if not result.complete:
        err_console.print(f"share done; {result.blocks_left} block(s) left to other shares, the last one to "
                          f"finish writes {result.output}", highlight=False)


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
