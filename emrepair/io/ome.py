"""OME-NGFF (OME-Zarr) multiscales metadata: reading 0.4/0.5 (validated against a small typed schema) and
building 0.5 for output (a 2x in-plane pyramid; the label metadata is in ``ome_labels``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from emrepair.errors import InputError
from emrepair.io.metadata import tidy_size, unit_to_nm

NGFF_VERSION = "0.5"
# Key in a multiscales entry's optional "metadata" dict marking the scale as a placeholder (voxel size unknown).
UNKNOWN_VOXEL_FLAG = "emrepair_voxel_size_known"
# Output pyramids: 2x in-plane levels while the next level's larger in-plane side is at least this many pixels.
PYRAMID_MIN_PX = 256
PYRAMID_MAX_LEVELS = 12


@dataclass(frozen=True)
class OmeLevel:
    """One resolution level of an OME-Zarr multiscale image."""

    path: str
    voxel_size: tuple[float, float, float] | None
    lead: int = 0  # number of leading time/channel axes before z, y, x (must have size 1 to be read)


class _Loose(BaseModel):
    """NGFF objects may carry fields emrepair does not use; those are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class Axis(_Loose):
    """An entry of ``axes``: a name, with optional type ("space", "time", "channel") and unit."""

    name: str
    type: str | None = None
    unit: str | None = None


class Transform(_Loose):
    """A coordinate transformation; emrepair reads ``scale`` ones (others, e.g. translation, are allowed)."""

    type: str
    scale: list[float] | None = None
    translation: list[float] | None = None


class Dataset(_Loose):
    """One level of a multiscale image: the array's path and its transformations."""

    path: str
    coordinateTransformations: list[Transform] = Field(default_factory=list)


class Multiscale(_Loose):
    """One ``multiscales`` entry (NGFF 0.4/0.5; axes as plain names are accepted as in 0.3)."""

    version: str | None = None
    name: str | None = None
    axes: list[Axis | str] | None = None
    datasets: list[Dataset] = Field(min_length=1)
    coordinateTransformations: list[Transform] | None = None
    metadata: dict[str, Any] | None = None


_MULTISCALES = TypeAdapter(list[Multiscale])


def parse_multiscales(attrs: dict[str, Any], where: str) -> tuple[list[Multiscale], str | None]:
    """The validated ``multiscales`` list and NGFF version from group attributes (0.5 under "ome", 0.4 at top
    level); ([], None) when the group has none.

    Raises:
        InputError: the metadata does not follow the NGFF schema; the message names the first bad field.
    """
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        raw, version = ome["multiscales"], ome.get("version", NGFF_VERSION)
    elif "multiscales" in attrs:
        raw, version = attrs["multiscales"], None
    else:
        return [], None
    try:
        multiscales = _MULTISCALES.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "multiscales" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise InputError(f"{where}: malformed OME-NGFF metadata: {field}: {first['msg']}") from None
    if not multiscales:
        raise InputError(f"{where}: malformed OME-NGFF metadata: multiscales is an empty list")
    if version is None:
        version = multiscales[0].version
    return multiscales, str(version) if version is not None else None


def _scale_of(transforms: list[Transform] | None, ndim: int) -> list[float] | None:
    for t in transforms or []:
        if t.type == "scale" and t.scale is not None:
            return list(t.scale) if len(t.scale) == ndim else None
    return [1.0] * ndim if transforms is None else None


def ome_levels(multiscale: Multiscale, where: str) -> list[OmeLevel]:
    """Levels of one validated multiscales entry with their (z, y, x) voxel size in nm.

    The last three axes must be z, y, x; leading time/channel axes are allowed (the reader requires size 1).
    The voxel size is the dataset's scale times the optional multiscale-wide scale, converted to nm.
    """
    axes = [a if isinstance(a, Axis) else Axis(name=a) for a in (multiscale.axes or ["z", "y", "x"])]
    names = [a.name for a in axes]
    lead = len(names) - 3
    spatial_leading = [a for a in axes[:max(lead, 0)] if a.type == "space"]
    if lead < 0 or [n.lower() for n in names[lead:]] != ["z", "y", "x"] or spatial_leading:
        raise InputError(f"{where}: OME-Zarr axes {names} are not supported (need z, y, x, optionally after t/c)")
    ndim = len(names)
    factors = [unit_to_nm(a.unit) for a in axes[lead:]]
    if (multiscale.metadata or {}).get(UNKNOWN_VOXEL_FLAG) is False:
        factors = [None, None, None]  # written by emrepair with a placeholder scale of 1
    global_scale = (_scale_of(multiscale.coordinateTransformations, ndim) or [1.0] * ndim)[lead:]
    levels: list[OmeLevel] = []
    for ds in multiscale.datasets:
        full_scale = _scale_of(ds.coordinateTransformations, ndim)
        scale = full_scale[lead:] if full_scale else None
        if scale is None or any(f is None for f in factors) or not all(math.isfinite(v) and v > 0 for v in scale):
            voxel = None
        else:
            voxel = tuple(tidy_size(s * g * f) for s, g, f in zip(scale, global_scale, factors))  # type: ignore[operator]
        levels.append(OmeLevel(path=ds.path, voxel_size=voxel, lead=lead))  # type: ignore[arg-type]
    return levels


def pyramid_shapes(shape: tuple[int, int, int], min_px: int | None = None) -> list[tuple[int, int, int]]:
    """The (z, y, x) shape of every level of an output pyramid: level 0 is ``shape``, each next level halves y and
    x (rounding up; z unchanged) while its larger in-plane side stays at least ``min_px`` (``PYRAMID_MIN_PX``), so
    the smallest level is about 256-511 px across; at most ``PYRAMID_MAX_LEVELS`` levels."""
    limit = PYRAMID_MIN_PX if min_px is None else min_px
    shapes = [tuple(int(s) for s in shape)]
    while len(shapes) < PYRAMID_MAX_LEVELS:
        z, y, x = shapes[-1]
        nxt = (z, (y + 1) // 2, (x + 1) // 2)
        if max(nxt[1], nxt[2]) < limit or (y, x) == nxt[1:]:
            break
        shapes.append(nxt)
    return shapes  # type: ignore[return-value]


def build_multiscales(voxel_size: tuple[float, float, float] | None, name: str, path: str = "0",
                      levels: int = 1) -> dict[str, Any]:
    """An NGFF 0.5 ``multiscales`` entry with ``levels`` levels named "0", "1", ... (``path`` for a single level),
    axes z, y, x in nanometres (scale 1 when unknown). Level k has scale (z, 2^k y, 2^k x) and a translation of
    (2^k - 1) / 2 pixels of level 0 in y and x: its pixels are means (or maxima) of 2^k x 2^k blocks, centred
    there."""
    base = list(voxel_size) if voxel_size else [1.0, 1.0, 1.0]
    datasets = []
    for k in range(levels):
        f = 2 ** k
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [base[0], base[1] * f, base[2] * f]}]
        if k:
            transforms.append({"type": "translation",
                               "translation": [0.0, base[1] * (f - 1) / 2, base[2] * (f - 1) / 2]})
        datasets.append({"path": path if levels == 1 else str(k), "coordinateTransformations": transforms})
    entry: dict[str, Any] = {
        "name": name,
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in ("z", "y", "x")],
        "datasets": datasets,
    }
    if voxel_size is None:
        entry["metadata"] = {UNKNOWN_VOXEL_FLAG: False}
    return entry
