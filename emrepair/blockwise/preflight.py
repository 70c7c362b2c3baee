"""Checks a blockwise run (fix, upsample-z) makes before any work: the paths it writes against its inputs and each
other, the space its outputs need, and writing its ``--save-report`` summary at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emrepair.blockwise.outputs import partial_path
from emrepair.io.base import Volume


def guard_run(inputs: list[str | None], output: str | None, options: Any) -> None:
    """Check every path a blockwise run (fix, upsample-z) writes against its inputs and each other before any work:
    the output and masks with their partial copies and progress folder, and the --save-report file."""
    from emrepair.io.output_guard import guard_outputs, report_of, target
    from emrepair.runstate import progress_dir_for

    resuming = bool(options.continue_run or options.part)
    targets = []
    for flag, final in (("-o", None if options.dry_run else output),
                        ("--masks", None if options.dry_run else options.masks_path)):
        if final:
            also = (partial_path(final), progress_dir_for(final)) if flag == "-o" else (partial_path(final),)
            targets.append(target(flag, final, "volume", also, may_exist=resuming or progress_dir_for(output).exists()))
    summary = options.summary_path
    own = None
    if summary and resuming and output:
        own = report_of(Path(summary).expanduser().absolute())
    same = own is not None and str(own.get("output")) == str(output)
    targets.append(target("--save-report", summary, "json", may_exist=same))
    model = options.model
    extra = [model] if model and Path(model).is_file() else []
    guard_outputs([*inputs, options.report_path, *extra], targets, options.overwrite)


def save_summary(options: Any, result: Any) -> None:
    """Write ``--save-report`` (replacing only what guard_run allowed: with --overwrite, or this run's own report
    when it continues or is a share)."""
    from emrepair.io.output_guard import report_of, write_json

    if options.summary_path and str(options.summary_path) != "-":
        path = Path(options.summary_path).expanduser().absolute()
        own = report_of(path) if (options.continue_run or options.part) else None
        replace = options.overwrite or (own is not None and str(own.get("output")) == str(result.output))
        write_json(path, result.to_dict(), overwrite=replace)


def check_run_space(vol: Volume, output_path: str, options: Any, out_shape: tuple[int, int, int]) -> None:
    """Refuse, before any work (fix and upsample-z), outputs that will not fit on their disks: the output with its
    pyramid (an ``.ome.zarr``) and the masks copied into it, and the ``--masks`` volume, summed per file system
    (``io.space.check_outputs_space``).
    A resumed run counts what its partial copies hold; one whose output is finished already writes nothing."""
    from emrepair.io.create import output_format
    from emrepair.io.space import PlannedOutput, check_outputs_space

    resuming = bool(options.continue_run or options.part)
    if resuming and Path(output_path).expanduser().exists():
        return  # finished by this run (already_complete), or refused as existing by the writer
    planned = []
    for final in filter(None, (output_path, options.masks_path)):
        path = Path(final).expanduser().absolute()
        labels = final != output_path
        fmt = output_format(path)
        partial = partial_path(final) if resuming and partial_path(final).exists() else None
        planned.append(PlannedOutput(path, fmt, out_shape, np.uint8 if labels else vol.dtype, labels=labels,
                                     embedded_labels=not labels and bool(options.masks_path), partial=partial))
    check_outputs_space(planned)
