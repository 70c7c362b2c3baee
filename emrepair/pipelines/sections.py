"""Decide which sections a repair touches: from --sections, from a detection report, or by running detection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emrepair.callbacks import ProgressCallback
from emrepair.detection.band_codec import encode_band
from emrepair.errors import UsageError
from emrepair.io.base import Volume


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
    config: Any = None,
    marks: bool = False,
    repair_precipitates: bool = False,
) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """Return ``({z: kind}, {z: geometry})`` for every section to repair.

    Exactly one source is used: explicit ``sections`` (kind "missing"), a detection report, or a fresh detection run
    (with ``config``, a DetectConfig, or the defaults).
    Geometry is ``{"lines": [[x0, y0, x1, y1], ...], "width_px": w}`` (full-resolution pixels) for a fold, and
    ``{"region": {...}}`` (``LostRegions.to_dict``) for a partly lost section, whose own pixels are kept.
    With ``marks`` (fix), a fresh detection also looks for staining precipitates and regional contrast changes
    (``DamageConfig``), and the report's marks become targets as :func:`targets_of` says.
    """
    if sections is not None and report_path is not None:
        raise UsageError("give either --sections or --report, not both")
    if sections is not None:
        return {z: "missing" for z in sections}, {}
    from emrepair.detection import DetectionReport, detect_volume

    if report_path is not None:
        report = DetectionReport.load(report_path)
        if tuple(report.shape) != tuple(vol.shape):
            raise UsageError(
                f"report {report_path} was made for shape {tuple(report.shape)}, but the volume is {tuple(vol.shape)}"
            )
    else:
        from emrepair.detection import DamageConfig, DetectConfig

        report = detect_volume(vol, config if config is not None else DetectConfig(), progress=progress,
                               damage=DamageConfig() if marks else None)
    return targets_of(report, marks=marks, repair_precipitates=repair_precipitates)


_PRECEDENCE = {"missing": 0, "fold": 1, "partial": 2}


def targets_of(report: Any, marks: bool = False,
               repair_precipitates: bool = False) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """``({z: kind}, {z: geometry})`` of a detection report (see :func:`repair_targets`).

    A section with several defects takes the first of missing, fold, partial as its kind; its geometry holds the
    fold band (``lines``, ``width_px``) and the lost region (``region``, emrepair.detection.lost_regions) it has.
    A fold's geometry carries its per-pixel band mask (``"band"``, ``detection.band_codec``) when the report has it.
    A fold without lines beside a lost region is repaired as a partly lost section.
    With ``marks``, a marked section that is no target yet becomes one with its region: a regional contrast
    change (corrected there), and a staining precipitate only with ``repair_precipitates`` (synthesized there).
    """
    kinds: dict[int, str] = {}
    geometry: dict[int, dict[str, Any]] = {}
    for d in sorted(report.defects, key=lambda d: _PRECEDENCE.get(d.kind, -1)):
        kinds.setdefault(d.z, d.kind)
        if d.kind == "fold" and d.lines:
            geometry.setdefault(d.z, {}).update(
                {"lines": [list(map(float, line)) for line in d.lines], "width_px": float(d.width_px or 0)})
            band = getattr(report, "band_masks", {}).get(d.z)
            if band is not None:  # the band as detection segmented it, not redrawn from lines and one width
                geometry[d.z]["band"] = encode_band(band)
        elif d.kind == "partial" and d.region is not None and kinds[d.z] != "missing":
            geometry.setdefault(d.z, {})["region"] = d.region.to_dict()
            if kinds[d.z] == "fold" and "lines" not in geometry[d.z]:
                kinds[d.z] = "partial"
    for m in sorted(getattr(report, "marks", []) if marks else [], key=lambda m: m.kind != "contrast"):
        if m.region is None or m.z in kinds or (m.kind == "precipitate" and not repair_precipitates):
            continue
        kinds[m.z] = m.kind
        geometry[m.z] = {"region": m.region.to_dict()}
    return kinds, geometry
