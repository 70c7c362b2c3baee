"""`emrepair info` on OME-Zarr: every multiscale level, with its scale in the units the metadata states, and the
label images of its ``labels`` group with the names of their values."""

from __future__ import annotations

from typing import Any


def ome_levels_summary(path: str) -> list[dict[str, Any]] | None:
    """The levels of the first multiscale image at ``path``: ``[{"path", "shape", "scale", "units"}]`` with the
    scale as stored (dataset scale times the image-wide scale, last three axes) and each axis' unit as written
    (None where the metadata gives none); None when ``path`` is not an OME-Zarr image or cannot be read."""
    import zarr

    from emrepair.errors import InputError
    from emrepair.io.ome import Axis, parse_multiscales

    try:
        group = zarr.open_group(str(path), mode="r")
        multiscales, _version = parse_multiscales(dict(group.attrs), str(path))
    except (InputError, OSError, ValueError, TypeError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    if not multiscales:
        return None
    image = multiscales[0]
    axes = [a if isinstance(a, Axis) else Axis(name=a) for a in (image.axes or ["z", "y", "x"])]
    global_scale = _scale(image.coordinateTransformations, len(axes))
    levels = []
    for dataset in image.datasets:
        scale = _scale(dataset.coordinateTransformations, len(axes))
        total = [s * g for s, g in zip(scale, global_scale)] if scale and global_scale else scale
        try:
            shape = [int(s) for s in group[dataset.path].shape]
        except (KeyError, TypeError, ValueError):
            shape = None
        levels.append({"path": dataset.path, "shape": shape[-3:] if shape else None,
                       "scale": [float(v) for v in total[-3:]] if total else None,
                       "units": [a.unit for a in axes[-3:]]})
    return levels


def _scale(transforms: Any, ndim: int) -> list[float] | None:
    for t in transforms or []:
        if t.type == "scale" and t.scale is not None and len(t.scale) == ndim:
            return [float(v) for v in t.scale]
    return [1.0] * ndim if not transforms else None


def describe_level(level: dict[str, Any]) -> str:
    """``'0: 4 x 32 x 32, scale 40 x 4 x 4 nanometer'``; a unit-less scale says so instead of claiming nm."""
    shape = " x ".join(map(str, level["shape"])) if level.get("shape") else "?"
    text = f"{level['path']}: {shape}"
    scale, units = level.get("scale"), level.get("units") or [None, None, None]
    if scale:
        numbers = " x ".join(f"{v:g}" for v in scale)
        if all(u is None or u == "" for u in units):
            text += f", scale {numbers} (no unit in the metadata)"
        elif len(set(units)) == 1:
            text += f", scale {numbers} {units[0]}"
        else:
            text += ", scale " + " x ".join(f"{v:g} {u or '(no unit)'}" for v, u in zip(scale, units))
    return text


def ome_labels_summary(path: str) -> list[dict[str, Any]] | None:
    """The label images listed by the ``labels`` group of the OME-Zarr image at ``path``:
    ``[{"name", "levels", "values": {value: class name}}]`` (values from ``image-label.properties``); None when it
    has no labels group or it cannot be read."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        if "labels" not in group:
            return None
        attrs = dict(group["labels"].attrs)
        names = (attrs.get("ome") or attrs).get("labels") or []
        found = []
        for name in names:
            image = dict(group[f"labels/{name}"].attrs)
            ome = image.get("ome") or image
            multiscales = ome.get("multiscales") or [{}]
            props = (ome.get("image-label") or {}).get("properties") or []
            found.append({"name": str(name), "levels": len(multiscales[0].get("datasets") or []),
                          "values": {str(p.get("label-value")): p.get("class") for p in props if isinstance(p, dict)}})
    except (OSError, ValueError, TypeError, KeyError, AttributeError, zarr.errors.GroupNotFoundError):
        return None
    return found or None


def describe_labels(labels: list[dict[str, Any]]) -> str:
    """``'labels/synthetic: 3 levels; 0 original, 1 missing, 2 fold band, 3 partial'``, one line per label image."""
    lines = []
    for entry in labels:
        values = ", ".join(f"{v} {name}" for v, name in entry.get("values", {}).items())
        lines.append(f"labels/{entry['name']}: {entry['levels']} level{'s' if entry['levels'] != 1 else ''}"
                     + (f"; {values}" if values else ""))
    return "\n".join(lines)
