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


def carried_value(value: Any) -> Any:
    """An input attribute as it should travel to the output: numpy arrays and scalars keep their dtype and shape,
    bytes become str, a string holding a JSON object (e.g. emrepair's provenance) becomes that object.

    Raises TypeError for values that cannot be carried portably (object references and the like).
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value.ravel()]
            if not all(isinstance(v, str) for v in items):
                raise TypeError("only string object arrays are carried")
            return np.array(items, dtype=object).reshape(value.shape)
        if value.dtype.kind not in "biufcSUM":
            raise TypeError(f"attributes of dtype {value.dtype} are not carried")
        return value.copy()
    if isinstance(value, np.generic):
        return value
    if isinstance(value, str) and value[:1] == "{":
        return decode_json_text(value)
    if isinstance(value, (str, bool, int, float, list, tuple, dict)) or value is None:
        return value
    raise TypeError(f"attributes of type {type(value).__name__} are not carried")


def hdf5_attr_value(value: Any) -> Any:
    """The HDF5 form of an attribute: numbers, strings and numpy values as themselves, arrays as arrays (string
    arrays as variable-length UTF-8), a flat or rectangular list of numbers or of strings as an array, anything
    else (dicts, mixed lists, None) as a JSON string."""
    import h5py

    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind == "U":
            return np.array([str(v) for v in value.ravel()], dtype=h5py.string_dtype()).reshape(value.shape)
        return value
    if isinstance(value, (list, tuple)) and value:
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged
            arr = None
        if arr is not None and arr.dtype.kind in "biuf" and not any(isinstance(v, bool) for v in np.ravel(value)):
            return arr
        if arr is not None and arr.dtype.kind == "U":
            return np.array([str(v) for v in arr.ravel()], dtype=h5py.string_dtype()).reshape(arr.shape)
    return json.dumps(to_jsonable(value))


# Carried attributes that restate the voxel size (z, y, x) in their own units: funlib/daisy ``voxel_size``,
# ilastik ``element_size_um``; rescaled when an output's voxel size differs from the input's (upsample-z).
SPACING_ATTRS = ("voxel_size", "element_size_um")


def rescale_spacing(attrs: dict[str, Any], old: tuple[float, float, float] | None,
                    new: tuple[float, float, float] | None) -> dict[str, Any]:
    """``attrs`` with each SPACING_ATTRS value of three numbers scaled by ``new / old`` per axis, keeping its type
    (an int array stays an int array when the scaled values are whole numbers); unchanged when either voxel size
    is unknown or they are equal."""
    if old is None or new is None or tuple(old) == tuple(new):
        return attrs
    ratio = np.asarray(new, dtype=float) / np.asarray(old, dtype=float)
    out = dict(attrs)
    for key in SPACING_ATTRS:
        value = attrs.get(key)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            continue
        if value is None or arr.shape != (3,):
            continue
        scaled = arr * ratio
        whole = bool(np.all(np.isclose(scaled, np.round(scaled))))
        if isinstance(value, np.ndarray):
            out[key] = (np.round(scaled).astype(value.dtype) if value.dtype.kind in "iu" and whole
                        else scaled.astype(value.dtype if value.dtype.kind == "f" else np.float64))
        else:
            integers = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
            out[key] = [int(round(v)) for v in scaled] if integers and whole else [tidy_size(v) for v in scaled]
    return out
