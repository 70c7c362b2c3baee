"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Dataset or array path inside an HDF5/Zarr container.")]
LevelOpt = Annotated[Optional[int], typer.Option("--level", help="OME-Zarr multiscale level (default 0).", min=0)]
SkipUnreadableOpt = Annotated[bool, typer.Option("--skip-unreadable", help="Folder inputs: leave out section files that cannot be read (dangling links, FIFOs, damaged headers), with a warning naming them; later sections then move up by one. Without it such a file is an error.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model name (see `emrepair models`) or a checkpoint path; 'auto' picks the best with trained weights for the stack (reslice for FIB-SEM-like stacks; in fix on CUDA only), else flowunet.")]
ReportInOpt = Annotated[Optional[Path], typer.Option("--report", help="Repair the defects listed in this `emrepair detect --report` file.")]
SectionsOpt = Annotated[Optional[str], typer.Option("--sections", help="Repair these sections, e.g. 5,9-11 (instead of detecting).")]
SaveReportOpt = Annotated[Optional[Path], typer.Option("--save-report", help="Write a JSON record of what was done ('-': on stdout, instead of the table).")]
TileSizeOpt = Annotated[Optional[int], typer.Option("--tile-size", min=16, help="Tile edge in pixels (default: fits the device).")]
OverlapOpt = Annotated[Optional[int], typer.Option("--overlap", min=0, help="Tile overlap in pixels (default: from the model's halo).")]
BlendOpt = Annotated[str, typer.Option("--blend", help="Tile blending: gaussian, hann or crop.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="(tile, t) inputs per network pass.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present, else the CPU), cpu, cuda or cuda:N (an error when CUDA is missing).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16 (autocast on CUDA only).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and write nothing.")]

ContinueOpt = Annotated[bool, typer.Option("--continue", help="Finish an interrupted run of the same command, skipping its finished blocks.")]
PartOpt = Annotated[Optional[str], typer.Option("--part", help="Do share i of N (e.g. 3/10) of the work, for job arrays; the last share to finish commits the output.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each loads the model once; one GPU each when CUDA is present).")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="With --workers: auto (daisy when installed), daisy or process.")]


# CLI parameter -> option field of a blockwise run (fix, upsample-z): emrepair.pipelines.options.RunOptions.
RUN_FIELDS = {"masks": "masks_path", "dataset": "dataset", "level": "level", "tile_size": "tile_size",
              "overlap": "overlap", "blend": "blend", "batch_size": "batch_size", "device": "device",
              "precision": "precision", "overwrite": "overwrite", "dry_run": "dry_run",
              "continue_run": "continue_run", "workers": "workers", "executor": "executor"}


def run_option_fields(params: dict[str, Any]) -> dict[str, Any]:
    """The RunOptions fields from a blockwise command's parameters (its ``locals()``): parsed --sections and
    --part, --report and --save-report as strings, the rest as given."""
    from emrepair.distributed.plan import parse_sections
    from emrepair.runstate import parse_part

    sections, report, save_report, part = (params[k] for k in ("sections", "report", "save_report", "part"))
    return {
        "sections": parse_sections(sections) if sections is not None else None,
        "report_path": str(report) if report else None,
        "summary_path": str(save_report) if save_report and not is_stdout(save_report) else None,
        "part": parse_part(part) if part is not None else None,
        **{field: params[name] for name, field in RUN_FIELDS.items()},
        "skip_unreadable": bool(params.get("skip_unreadable", False)),
    }


def check_executor(executor: str) -> None:
    """Refuse an unknown --executor with a usage error."""
    from emrepair.choices import ExecutorKind, spoken, values
    from emrepair.errors import UsageError

    if executor not in values(ExecutorKind):
        raise UsageError(f"--executor must be {spoken(ExecutorKind)}, not {executor!r}")


def check_engine_choices(blend: str, precision: str) -> None:
    """Refuse unknown --blend and --precision values with a usage error."""
    from emrepair.choices import Blend, Precision, spoken, values
    from emrepair.errors import UsageError

    if blend not in values(Blend):
        raise UsageError(f"--blend must be {spoken(Blend)}, not {blend!r}")
    if precision not in values(Precision):
        raise UsageError(f"--precision must be {spoken(Precision)}, not {precision!r}")


def is_stdout(path: Any) -> bool:
    """Whether a report path is ``-``, meaning stdout (handled here in the CLI, never passed on as a file)."""
    return path is not None and str(path) == "-"


def output_target(path: str) -> Any:
    """The file or folder an output path names: ``fixed.h5/volumes/raw`` -> ``fixed.h5``."""
    from pathlib import Path

    p = Path(path).expanduser()
    for i, part in enumerate(p.parts):
        if part.lower().endswith((".h5", ".hdf5", ".hdf", ".zarr", ".n5")):
            return Path(*p.parts[: i + 1])
    return p


def check_output_free(path: Optional[str], overwrite: bool) -> None:
    """Refuse an existing output before any work is done (not after detection has run for minutes)."""
    from emrepair.errors import OutputError

    if path is None or overwrite or is_stdout(path):
        return
    target = output_target(str(path))
    if target.exists() or target.is_symlink():
        raise OutputError(f"output exists: {target.absolute()} (use --overwrite to replace it)")


def check_device(device: str) -> None:
    """An explicit ``--device cuda[:N]`` on a machine without CUDA is a usage error; only ``auto`` falls back."""
    from emrepair.errors import UsageError

    if not str(device).strip().lower().startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine (use --device auto or cpu; "
                         "see the README for installing the CUDA build of PyTorch)")

