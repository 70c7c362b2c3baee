"""``emrepair detect``: run the detector over a volume and write the report, label masks and previews."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.detection import KIND_LABELS, DetectConfig, DetectionReport, detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.detection.report import REGION_KINDS
from emrepair.errors import OutputError

_PANEL_SIDE = 512  # long side of each panel of a preview picture


def run_detect(input_path: str | Path, *, dataset: str | None = None, level: int | None = None,
               skip_unreadable: bool = False,
               report_path: str | Path | None = None, masks_path: str | Path | None = None,
               preview_dir: str | Path | None = None, config: DetectConfig = DetectConfig(),
               overwrite: bool = False, progress: ProgressCallback | None = None,
               damage: DamageConfig | None = DamageConfig()) -> DetectionReport:
    """Detect defects in the volume at ``input_path`` and write the requested outputs.

    Args:
        report_path: write the JSON report here.
        masks_path: write a uint8 label volume (0 good, 1 missing, 2 fold band, 3 lost region, 4 staining
            precipitate, 5 regional contrast change; ``emrepair.detection.KIND_LABELS``) of the input's shape here,
            section by section; OME-Zarr labels when the path ends in ``.ome.zarr``.
        preview_dir: write ``z{z:05d}_{kind}.png`` per defective section: the section between its
            neighbours, the fold band tinted red and its lines drawn in green.
        overwrite: replace existing outputs (only ones emrepair wrote: see emrepair.io.output_guard).
        skip_unreadable: for a folder input, leave out unreadable section files with a warning (see open_volume).
        damage: also look for staining precipitates and regional contrast changes (None: not).

    Every output is checked against the input and the others before any pixel is read.
    """
    from emrepair.io import open_volume
    from emrepair.io.output_guard import guard_outputs, target, write_json
    from emrepair.pipelines.provenance import base_record

    with open_volume(input_path, dataset=dataset, level=level, skip_unreadable=skip_unreadable) as vol:
        guard_outputs([input_path, vol.info.path], [target("--report", report_path, "json"),
                                                     target("--masks", masks_path, "volume"),
                                                     target("--preview", preview_dir, "preview")], overwrite)
        report = detect_volume(vol, config, progress=progress, damage=damage)
        report.input = str(input_path)
        if report_path is not None and str(report_path) != "-":
            write_json(report_path, report.to_dict(), overwrite=overwrite)
        if masks_path is not None:
            _write_masks(vol, report, masks_path, overwrite, base_record("detect", str(input_path)))
        if preview_dir is not None:
            write_previews(vol, report, Path(preview_dir))
    return report


def _write_masks(vol: object, report: DetectionReport, masks_path: str | Path, overwrite: bool,
                 provenance: dict) -> None:
    """Stream the label volume, one section at a time."""
    from emrepair.io import create_output

    provenance["labels"] = {"0": "good", **{str(v): k for k, v in KIND_LABELS.items()}}
    with create_output(masks_path, like=vol.info, dtype=np.uint8, labels=True, overwrite=overwrite,
                       attrs={"emrepair": provenance}) as writer:
        for z in range(vol.shape[0]):
            writer.write_section(z, report.mask(z, vol.shape[1:]))


def _to_uint8(section: np.ndarray) -> np.ndarray:
    """Contrast-stretch a section (1-99 % of finite pixels) to uint8."""
    values = section.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(section.shape, np.uint8)
    lo, hi = np.percentile(values[finite], [1, 99])
    scaled = (np.where(finite, values, lo) - lo) * (255.0 / max(float(hi - lo), 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _panel(section: np.ndarray, title: str, scale: float) -> np.ndarray:
    """A BGR picture of one section with a title."""
    image = cv2.cvtColor(_to_uint8(section), cv2.COLOR_GRAY2BGR)
    if scale != 1.0:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    cv2.putText(image, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1, cv2.LINE_AA)
    return image


def write_previews(vol: object, report: DetectionReport, folder: Path) -> list[Path]:
    """One PNG per defective section: previous, defective (annotated) and next section side by side (previews an
    earlier run left in ``folder`` are removed first; each picture is written under a temporary name, then renamed)."""
    import os

    from emrepair.io.output_guard import prepare_preview_folder
    from emrepair.io.writers.base import owner_tag

    prepare_preview_folder(folder)
    depth, h, w = vol.shape
    scale = min(1.0, _PANEL_SIDE / max(h, w))
    written = []
    for defect in sorted(report.defects + report.marks, key=lambda d: d.z):
        z = defect.z
        centre = _panel(vol.read_section(z), f"z={z} {defect.kind} {defect.score:.2f}", scale)
        label = cv2.resize(report.mask(z, (h, w)), (centre.shape[1], centre.shape[0]), interpolation=cv2.INTER_NEAREST)
        if defect.kind == "fold":
            band = label > 0
            centre[band] = (0.5 * centre[band] + np.array([0, 0, 127])).astype(np.uint8)
            for x0, y0, x1, y1 in defect.lines or []:
                cv2.line(centre, (round(x0 * scale), round(y0 * scale)), (round(x1 * scale), round(y1 * scale)),
                         (0, 255, 0), 1, cv2.LINE_AA)
        elif defect.kind in REGION_KINDS:  # the region tinted: partial red, precipitate magenta, contrast yellow
            tint = {"partial": (0, 0, 127), "precipitate": (127, 0, 127), "contrast": (0, 127, 127)}[defect.kind]
            region = label == KIND_LABELS[defect.kind]
            centre[region] = (0.5 * centre[region] + np.array(tint)).astype(np.uint8)
        else:
            cv2.rectangle(centre, (0, 0), (centre.shape[1] - 1, centre.shape[0] - 1), (0, 0, 255), 3)
        panels = []
        for nz in (z - 1, z, z + 1):
            if nz == z:
                panels.append(centre)
            elif 0 <= nz < depth:
                panels.append(_panel(vol.read_section(nz), f"z={nz}", scale))
            else:
                panels.append(np.zeros_like(centre))
        gap = np.full((centre.shape[0], 4, 3), 255, np.uint8)
        picture = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
        path = folder / f"z{z:05d}_{defect.kind}.png"
        temp = folder / f".{path.stem}.tmp-emrepair-{owner_tag()}.png"
        try:
            if not cv2.imwrite(str(temp), picture):
                raise OSError("OpenCV could not write it")
            os.replace(temp, path)  # replaces a link there, never follows it
        except OSError as exc:
            raise OutputError(f"cannot write preview {path}: {exc}") from exc
        written.append(path)
    return written
