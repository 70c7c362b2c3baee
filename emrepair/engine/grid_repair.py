"""Repairing missing sections with a grid model (``reslice``): the gap is filled on a grid of rows as far apart
as the pixels, from several good sections on each side.

A stack whose sections lie ``ratio`` pixels apart (z spacing / pixel size, times the step between the sections
used) is laid out on rows ``ratio`` apart; a missing run leaves a longer gap of rows, which the model fills
from the xz and yz reslices of ``context`` good sections on each side, the way it fills the rows between
sections in upsample-z. Only the rows of the missing sections are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.errors import UsageError


def grid_ratio(voxel_size: tuple[float, float, float] | None, step: int, max_factor: int) -> int:
    """Rows per ``step`` sections on a grid whose rows are as far apart as the pixels: round(step * z / xy), with
    unknown voxel sizes taken as isotropic.

    Raises:
        UsageError: sections more than ``max_factor`` pixels apart (the model was not made for such gaps).
    """
    ratio = float(step)
    if voxel_size is not None and all(np.isfinite(v) and v > 0 for v in voxel_size):
        z, y, x = voxel_size
        ratio = step * z / ((y + x) / 2)
    rows = max(1, int(round(ratio)))
    if rows > max_factor:
        raise UsageError(f"sections {ratio:.1f} pixels apart are beyond this grid model's {max_factor} "
                         "(it is meant for FIB-SEM-like stacks); use an interpolation model such as flowunet")
    return rows


def repair_context(model: Any) -> int:
    """Good sections a grid model uses beyond each neighbour of a gap: its ``repair_context`` (else its
    ``z_context``, else 1)."""
    return int(getattr(model, "repair_context", getattr(model, "z_context", 1)))


def known_around(left: int, right: int, step: int, context: int, usable: Callable[[int], bool],
                 depth: int) -> list[int]:
    """The good sections a gap between ``left`` and ``right`` is filled from: both, and up to ``context`` more on
    each side ``step`` apart, stopping at the stack's ends or the first unusable section."""
    before = [left]
    for i in range(1, context + 1):
        z = left - i * step
        if z < 0 or not usable(z):
            break
        before.insert(0, z)
    after = [right]
    for i in range(1, context + 1):
        z = right + i * step
        if z >= depth or not usable(z):
            break
        after.append(z)
    return before + after


def grid_layout(known: list[int], targets: list[int], step: int, ratio: int) -> tuple[list[int], int, list[int]]:
    """(rows of the known sections, total rows, rows of the targets) with the first known section on row 0."""
    first = known[0]
    to_row = lambda z: (z - first) * ratio // step
    rows = [to_row(z) for z in known]
    return rows, rows[-1] + 1, [to_row(z) for z in targets]


def fill_gap(tiler: Any, sections: list[np.ndarray], rows: list[int], total: int, target_rows: list[int],
             progress: ProgressCallback | None = None) -> list[np.ndarray]:
    """The target rows, (H, W) float32 in [0, 1] each, from the known ``sections`` (float32 in [0, 1]) through a
    ``VolumeTiler`` of a grid model."""
    keep = range(min(target_rows), max(target_rows) + 1)
    images = tiler.fill(np.stack(sections), rows, total, keep, progress)
    return [images[r - keep.start] for r in target_rows]
