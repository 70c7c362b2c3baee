"""The detection report: defective sections, their scores and fold geometry, as an object and as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.detection.band_codec import decode_band, encode_band, fit_band
from emrepair.detection.fold_geometry import draw_band
from emrepair.detection.lost_regions import LostRegions
from emrepair.errors import InputError, OutputError

KIND_LABELS = {"missing": 1, "fold": 2, "partial": 3, "precipitate": 4, "contrast": 5}
REGION_KINDS = ("partial", "precipitate", "contrast")  # defects that carry a region mask
MARK_KINDS = ("precipitate", "contrast")  # marked for the user, kept in ``DetectionReport.marks``: not repair targets
_DRAW_ORDER = {"missing": 0, "fold": 1, "contrast": 2, "precipitate": 3, "partial": 4}  # later ones on top
REPORT_VERSION = 1


@dataclass
class Defect:
    """One defect of a section. ``lines`` ([[x0, y0, x1, y1], ...], full-resolution pixels) and ``width_px``
    are set for folds only; ``fraction`` (of the section's area) and ``region`` (its cells) for the region kinds
    (``REGION_KINDS``): partly lost sections (``partial``), staining precipitates (``precipitate``) and regional
    contrast changes (``contrast``). A section may carry a fold and any of the region kinds."""

    z: int
    kind: str
    score: float
    lines: list[list[float]] | None = None
    width_px: float | None = None
    fraction: float | None = None
    region: LostRegions | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: z, kind, score, for folds lines and width_px, for the region kinds fraction and region."""
        out: dict[str, Any] = {"z": int(self.z), "kind": self.kind, "score": round(float(self.score), 4)}
        if self.kind == "fold":
            out["lines"] = [[round(float(v), 1) for v in line] for line in (self.lines or [])]
            out["width_px"] = round(float(self.width_px or 0.0), 1)
        if self.kind in REGION_KINDS:
            out["fraction"] = round(float(self.fraction or 0.0), 4)
            if self.region is not None:
                if self.region.fractions:
                    out["causes"] = {k: round(v, 4) for k, v in self.region.fractions.items()}
                out["region"] = self.region.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Defect":
        """Inverse of ``to_dict``."""
        region = LostRegions.from_dict(data["region"]) if data.get("region") is not None else None
        fraction = data.get("fraction")
        return cls(int(data["z"]), str(data["kind"]), float(data["score"]),
                   data.get("lines"), data.get("width_px"), None if fraction is None else float(fraction), region)


@dataclass
class DetectionReport:
    """What detection found in a volume.

    ``band_masks`` holds each fold's band mask at the resolution it was found; it is saved with its fold in the
    JSON (``"band"``, ``band_codec``). A report without it (an older one) rebuilds bands from the fold lines and
    widths.

    ``defects`` are what a repair targets (missing, fold, partial); ``marks`` are the kinds shown to the user and
    left alone unless asked for (``MARK_KINDS``: staining precipitates, regional contrast changes), saved under
    their own JSON key so that a reader of ``defects`` never mistakes them for sections to replace.
    """

    input: str
    shape: tuple[int, int, int]
    defects: list[Defect] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    band_masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    marks: list[Defect] = field(default_factory=list)

    def defective_z(self) -> list[int]:
        """Sorted z of all defective sections."""
        return sorted({d.z for d in self.defects})

    def defect_at(self, z: int) -> Defect | None:
        """The (first) defect reported for section ``z``, or None; see ``defects_at`` for all of them."""
        return next((d for d in self.defects if d.z == z), None)

    def defects_at(self, z: int) -> list[Defect]:
        """Every defect reported for section ``z`` (a fold and a partial loss may share a section)."""
        return [d for d in self.defects if d.z == z]

    def marks_at(self, z: int) -> list[Defect]:
        """Every mark (precipitates, contrast region) reported for section ``z``."""
        return [d for d in self.marks if d.z == z]

    def mask(self, z: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 labels for section ``z`` at ``shape`` (default the volume's): 0 good, KIND_LABELS otherwise.

        A missing section is labelled entirely; a fold labels its band only, the region kinds their regions
        (drawn over a fold band of the same section: contrast first, then precipitates, then lost regions).
        """
        shape = tuple(shape) if shape is not None else tuple(self.shape[1:])
        if len(shape) != 2:
            raise ValueError(f"expected a (y, x) shape, got {shape}")
        out = np.zeros(shape, np.uint8)
        for defect in sorted(self.defects_at(z) + self.marks_at(z), key=lambda d: _DRAW_ORDER.get(d.kind, 0)):
            label = KIND_LABELS.get(defect.kind, 1)
            if defect.kind == "fold":
                out[self._band(z, defect, shape)] = label
            elif defect.kind in REGION_KINDS:
                if defect.region is not None:
                    out[defect.region.mask(shape)] = label
            else:
                out[:] = label
        return out

    def _band(self, z: int, defect: Defect, shape: tuple[int, int]) -> np.ndarray:
        """The fold band of section ``z`` at ``shape``: the stored mask, or redrawn from the lines."""
        stored = self.band_masks.get(z)
        if stored is not None:
            band = fit_band(stored, shape)
        else:
            scale = (shape[0] / self.shape[1], shape[1] / self.shape[2])
            band = draw_band(shape, defect.lines or [], float(defect.width_px or 1.0), scale)
        return band

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: version, input, shape, defects (defective sections only), marks (when any),
        sections."""
        out = {
            "version": REPORT_VERSION,
            "input": self.input,
            "shape": [int(s) for s in self.shape],
            "defects": [self._defect_dict(d) for d in sorted(self.defects, key=lambda d: d.z)],
        }
        if self.marks:
            out["marks"] = [d.to_dict() for d in sorted(self.marks, key=lambda d: d.z)]
        out["sections"] = self.sections
        return out

    def _defect_dict(self, defect: Defect) -> dict[str, Any]:
        out = defect.to_dict()
        if defect.kind == "fold" and defect.z in self.band_masks:
            out["band"] = encode_band(self.band_masks[defect.z])
        return out

    def save(self, path: str | Path) -> None:
        """Write the JSON report; raises OutputError when the file cannot be written."""
        try:
            Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write report {path}: {exc.strerror or exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DetectionReport":
        """Inverse of ``to_dict``; raises InputError for a document that is not a version-1 report."""
        if not isinstance(data, dict) or data.get("version") != REPORT_VERSION:
            raise InputError(f"not an emrepair detection report (version {REPORT_VERSION})")
        try:
            shape = tuple(int(s) for s in data["shape"])
            found = [Defect.from_dict(d) for d in [*data["defects"], *data.get("marks", [])]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed detection report: {exc}") from exc
        if len(shape) != 3:
            raise InputError(f"malformed detection report: shape {list(shape)} is not (z, y, x)")
        defects = [d for d in found if d.kind not in MARK_KINDS]
        marks = [d for d in found if d.kind in MARK_KINDS]
        report = cls(str(data.get("input", "")), shape, defects, list(data.get("sections", [])), marks=marks)
        for item in data["defects"]:
            if item.get("kind") == "fold" and item.get("band") is not None:
                report.band_masks[int(item["z"])] = decode_band(item["band"])
        return report

    @classmethod
    def load(cls, path: str | Path) -> "DetectionReport":
        """Read a JSON report written by ``save``."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"cannot read report {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"report {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        return cls.from_dict(data)
