"""Metadata conversions shared by readers and writers: voxel sizes, units, JSON-safe attributes."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np

# Length units as spelled by OME-NGFF (UDUNITS), ImageJ and TIFF users, in nanometres.
UNIT_TO_NM: dict[str, float] = {
    "nanometer": 1.0, "nanometre": 1.0, "nm": 1.0,
    "micrometer": 1000.0, "micrometre": 1000.0, "micron": 1000.0, "um": 1000.0, "µm": 1000.0, "\u03bcm": 1000.0,
    "\\u00b5m": 1000.0,
    "angstrom": 0.1, "Å": 0.1,
    "millimeter": 1e6, "millimetre": 1e6, "mm": 1e6,
    "centimeter": 1e7, "cm": 1e7,
    "meter": 1e9, "m": 1e9,
    "picometer": 1e-3, "pm": 1e-3,
}


def unit_to_nm(unit: str | None) -> float | None:
    """Nanometres per ``unit``; None when the unit is unknown. A missing unit (None or "") counts as nanometres."""
    if unit is None or str(unit).strip() == "":
        return 1.0
    return UNIT_TO_NM.get(str(unit).strip().lower(), UNIT_TO_NM.get(str(unit).strip()))


def tidy_size(value: float) -> float:
    """Round a physical size to 9 significant digits, hiding float noise from unit conversions and TIFF rationals."""
    return float(f"{value:.9g}")


def voxel_size_or_none(values: Iterable[Any] | None) -> tuple[float, float, float] | None:
    """(z, y, x) as floats when all three are finite and positive, otherwise None (unknown)."""
    if values is None:
        return None
    try:
        vals = [float(v) for v in np.asarray(values, dtype=float).ravel()]
    except (TypeError, ValueError):
        return None
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        return None
    return (tidy_size(vals[0]), tidy_size(vals[1]), tidy_size(vals[2]))


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and bytes to plain Python so the value can go through ``json.dumps``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def decode_json_text(value: Any) -> Any:
    """Return the parsed JSON when ``value`` is a string holding a JSON object or list, else ``value`` unchanged."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
