"""OME-NGFF (OME-Zarr) multiscales metadata: reading 0.4/0.5 and building 0.5 for output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emrepair.errors import InputError
from emrepair.io.metadata import tidy_size, unit_to_nm

NGFF_VERSION = "0.5"
# Key in a multiscales entry's optional "metadata" dict marking the scale as a placeholder (voxel size unknown).
UNKNOWN_VOXEL_FLAG = "emrepair_voxel_size_known"


@dataclass(frozen=True)
class OmeLevel:
    """One resolution level of an OME-Zarr multiscale image."""

    path: str
    voxel_size: tuple[float, float, float] | None
    lead: int = 0  # number of leading time/channel axes before z, y, x (must have size 1 to be read)


def multiscales_of(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The ``multiscales`` list and NGFF version from group attributes (0.5 under "ome", 0.4 at top level)."""
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        return list(ome["multiscales"]), str(ome.get("version", NGFF_VERSION))
    if "multiscales" in attrs:
        ms = list(attrs["multiscales"])
        version = ms[0].get("version") if ms and isinstance(ms[0], dict) else None
        return ms, str(version) if version else None
    return [], None


def _scale_of(transforms: list[dict[str, Any]] | None, ndim: int) -> list[float] | None:
    for t in transforms or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = [float(v) for v in t["scale"]]
            return scale if len(scale) == ndim else None
    return [1.0] * ndim if transforms is None else None


def ome_levels(multiscale: dict[str, Any], where: str) -> list[OmeLevel]:
    """Levels of one multiscales entry with their (z, y, x) voxel size in nm.

    The last three axes must be z, y, x; leading time/channel axes are allowed (the reader requires size 1).
    The voxel size is the dataset's scale times the optional multiscale-wide scale, converted to nm.
    """
    axes = multiscale.get("axes") or [{"name": n} for n in ("z", "y", "x")]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    lead = len(names) - 3
    spatial_leading = [a for a in axes[:max(lead, 0)] if isinstance(a, dict) and a.get("type") == "space"]
    if lead < 0 or [n.lower() for n in names[lead:]] != ["z", "y", "x"] or spatial_leading:
        raise InputError(f"{where}: OME-Zarr axes {names} are not supported (need z, y, x, optionally after t/c)")
    ndim = len(names)
    factors = [unit_to_nm(a.get("unit") if isinstance(a, dict) else None) for a in axes[lead:]]
    if (multiscale.get("metadata") or {}).get(UNKNOWN_VOXEL_FLAG) is False:
        factors = [None, None, None]  # written by emrepair with a placeholder scale of 1
    global_scale = (_scale_of(multiscale.get("coordinateTransformations"), ndim) or [1.0] * ndim)[lead:]
    levels: list[OmeLevel] = []
    for ds in multiscale.get("datasets", []):
        full_scale = _scale_of(ds.get("coordinateTransformations", []), ndim)
        scale = full_scale[lead:] if full_scale else None
        if scale is None or any(f is None for f in factors):
            voxel = None
        else:
            voxel = tuple(tidy_size(s * g * f) for s, g, f in zip(scale, global_scale, factors))  # type: ignore[operator]
        levels.append(OmeLevel(path=str(ds["path"]), voxel_size=voxel, lead=lead))  # type: ignore[arg-type]
    if not levels:
        raise InputError(f"{where}: OME-Zarr multiscales lists no datasets")
    return levels


def build_multiscales(voxel_size: tuple[float, float, float] | None, name: str, path: str = "0") -> dict[str, Any]:
    """An NGFF 0.5 ``multiscales`` entry with one level, axes z, y, x in nanometres (scale 1 when unknown)."""
    scale = list(voxel_size) if voxel_size else [1.0, 1.0, 1.0]
    entry: dict[str, Any] = {
        "name": name,
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in ("z", "y", "x")],
        "datasets": [{"path": path, "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    if voxel_size is None:
        entry["metadata"] = {UNKNOWN_VOXEL_FLAG: False}
    return entry
