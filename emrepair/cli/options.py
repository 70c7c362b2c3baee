"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="Dataset or array path inside an HDF5/Zarr container.")]
LevelOpt = Annotated[Optional[int], typer.Option("--level", help="OME-Zarr multiscale level (default 0).", min=0)]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
