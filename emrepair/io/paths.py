"""Path syntax: which format a path names, and where the container ends and the inner dataset path begins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emrepair.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass(frozen=True)
class Location:
    """A volume address: the container on disk, its format family, and the path inside it (or None)."""

    container: Path
    family: str  # "hdf5", "zarr", "tiff" or "image-folder"
    inner: str | None


def natural_key(name: str) -> list[object]:
    """Sort key that orders embedded numbers by value: 1, 2, ..., 10 rather than 1, 10, 2."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_zarr_dir(path: Path) -> bool:
    """True when ``path`` is a folder holding Zarr v2 or v3 metadata."""
    return path.is_dir() and any((path / f).is_file() for f in ("zarr.json", ".zgroup", ".zarray"))


def _join_inner(a: str | None, b: str | None, where: str) -> str | None:
    a = a.strip("/") if a else None
    b = b.strip("/") if b else None
    if a and b and a != b:
        raise InputError(f"{where}: the path names dataset '{a}' but dataset='{b}' was also given")
    return a or b or None


def locate(path: str | Path, dataset: str | None = None) -> Location:
    """Resolve a user path such as ``stack.h5/volumes/raw`` or ``vol.zarr/raw`` into a Location.

    The path is split at the first component ending in an HDF5 or Zarr suffix; the rest is the inner path.
    Raises InputError when nothing exists at the path or its format is not recognised.
    """
    p = Path(path).expanduser()
    parts = p.parts
    for i in range(1, len(parts) + 1):
        head = Path(*parts[:i])
        rest = "/".join(parts[i:]) or None
        name = head.name.lower()
        if name.endswith(HDF5_SUFFIXES) and head.is_file():
            return Location(head, "hdf5", _join_inner(rest, dataset, str(p)))
        if name.endswith(ZARR_SUFFIXES) and head.is_dir():
            return Location(head, "zarr", _join_inner(rest, dataset, str(p)))
    if not p.exists():
        raise InputError(f"input not found: {p}")
    name = p.name.lower()
    if p.is_dir():
        if is_zarr_dir(p):
            return Location(p, "zarr", _join_inner(None, dataset, str(p)))
        return Location(p, "image-folder", None)
    if name.endswith(TIFF_SUFFIXES):
        return Location(p, "tiff", None)
    if _looks_like_hdf5(p):
        return Location(p, "hdf5", _join_inner(None, dataset, str(p)))
    raise InputError(
        f"unknown input format: {p} (expected .h5/.hdf5, .zarr, .ome.zarr, .tif/.tiff or a folder of section images)"
    )


def _looks_like_hdf5(path: Path) -> bool:
    """True when the file starts with the HDF5 signature (for HDF5 files with an unusual extension)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False
