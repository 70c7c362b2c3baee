"""``open_volume``: one entry point that picks the reader from the path."""

from __future__ import annotations

from pathlib import Path

from emrepair.errors import InputError
from emrepair.io.folder_volume import ImageFolderVolume
from emrepair.io.hdf5_volume import HDF5Volume
from emrepair.io.paths import locate
from emrepair.io.section_volume import SectionVolume
from emrepair.io.tiff_volume import TiffVolume
from emrepair.io.zarr_volume import ZarrVolume


def open_volume(path: str | Path, dataset: str | None = None, level: int | None = None,
                skip_unreadable: bool = False) -> SectionVolume:
    """Open a 3-D (z, y, x) volume lazily and read-only.

    Args:
        path: an HDF5 file (``stack.h5`` or ``stack.h5/volumes/raw``), a Zarr/OME-Zarr store
            (``vol.zarr``, ``vol.zarr/raw``, ``img.ome.zarr``), a multi-page TIFF, or a folder of
            per-section TIFF/PNG images.
        dataset: the dataset/array path inside an HDF5 file or Zarr group (same as the path suffix form).
        level: resolution level of an OME-Zarr multiscale image (default 0, the finest).
        skip_unreadable: for a folder of section images, leave out (with an InputWarning naming them) the
            entries that cannot be read instead of refusing the folder; the sections after each move up by one.

    Raises:
        InputError: missing path, unknown format, ambiguous container, wrong shape/dtype, unreadable file.
    """
    loc = locate(path, dataset)
    if level is not None and loc.family != "zarr":
        raise InputError(f"{path}: level={level} applies only to OME-Zarr images")
    if loc.family in ("tiff", "image-folder") and dataset:
        raise InputError(f"{path}: a {loc.family} input has no datasets (got dataset='{dataset}')")
    if loc.family == "hdf5":
        return HDF5Volume(loc.container, loc.inner)
    if loc.family == "zarr":
        return ZarrVolume(loc.container, loc.inner, level)
    if loc.family == "tiff":
        return TiffVolume(loc.container)
    return ImageFolderVolume(loc.container, skip_unreadable=skip_unreadable)
