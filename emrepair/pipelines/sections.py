"""Decide which sections a repair touches: from --sections, from a detection report, or by running detection."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from emrepair.errors import UsageError
from emrepair.io.base import Volume

ProgressCallback = Callable[[int, int], None]


def defects_to_repair(
    vol: Volume,
    *,
    sections: list[int] | None = None,
    report_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> dict[int, str]:
    """Return ``{z: kind}`` for every section to repair (see :func:`repair_targets`)."""
    return repair_targets(vol, sections=sections, report_path=report_path, progress=progress)[0]


def repair_targets(
    vol: Volume,
    *,
    sections: list[int] | None = None,
    report_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """Return ``({z: kind}, {z: fold geometry})`` for every section to repair.

    Exactly one source is used: explicit ``sections`` (kind "missing"), a detection report, or a fresh detection run.
    Fold geometry is ``{"lines": [[x0, y0, x1, y1], ...], "width_px": w}`` in full-resolution pixels.
    """
    if sections is not None and report_path is not None:
        raise UsageError("give either --sections or --report, not both")
    if sections is not None:
        return {z: "missing" for z in sections}, {}
    from emrepair.detect import DetectionReport, detect_volume

    if report_path is not None:
        report = DetectionReport.load(report_path)
        if tuple(report.shape) != tuple(vol.shape):
            raise UsageError(
                f"report {report_path} was made for shape {tuple(report.shape)}, but the volume is {tuple(vol.shape)}"
            )
    else:
        report = detect_volume(vol, progress=progress)
    folds = {d.z: {"lines": [list(map(float, line)) for line in (d.lines or [])], "width_px": float(d.width_px or 0)}
             for d in report.defects if d.kind == "fold" and d.lines}
    return {d.z: d.kind for d in report.defects}, folds
