"""Lazy reader for a folder of per-section TIFF or PNG images in natural order (1, 2, ..., 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from emrepair.errors import InputError
from emrepair.io.base import VolumeInfo
from emrepair.io.paths import IMAGE_SUFFIXES, natural_key
from emrepair.io.section_volume import SectionVolume, check_dtype, check_volume_shape, one_line
from emrepair.io.tiff_volume import imagej_voxel_size, read_sidecar

FOLDER_SIDECAR = "emrepair.json"


def section_files(folder: Path) -> list[Path]:
    """TIFF/PNG files directly in ``folder`` (hidden files skipped), naturally sorted by name."""
    files = [
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """One section image as a 2-D array (TIFF via tifffile, PNG via Pillow)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                arr = np.asarray(im)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise InputError(f"cannot read {path}: {one_line(exc)}") from exc
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2-D greyscale section, got shape {arr.shape}")
    return arr


class ImageFolderVolume(SectionVolume):
    """A folder with one image per section; the first image fixes shape and dtype, every other must match."""

    def __init__(self, folder: Path) -> None:
        where = str(folder)
        self._files = section_files(folder)
        if not self._files:
            raise InputError(f"{where}: folder holds no .tif/.tiff/.png section images")
        first = read_image(self._files[0])
        voxel = None
        if self._files[0].suffix.lower() in (".tif", ".tiff"):
            try:
                with tifffile.TiffFile(self._files[0]) as tif:
                    voxel = imagej_voxel_size(tif)
            except (OSError, ValueError, tifffile.TiffFileError):
                voxel = None
        self.info = VolumeInfo(
            format="image-folder",
            path=where,
            shape=check_volume_shape((len(self._files),) + first.shape, where),
            dtype=check_dtype(first.dtype, str(self._files[0])),
            voxel_size=voxel,
            attrs=read_sidecar(folder / FOLDER_SIDECAR),
        )

    @property
    def files(self) -> list[Path]:
        """The section files in z order."""
        return list(self._files)

    def _read_section(self, z: int) -> np.ndarray:
        arr = read_image(self._files[z])
        if arr.shape != self.shape[1:] or arr.dtype.newbyteorder("=") != self.dtype:
            raise InputError(
                f"{self._files[z]}: section {z} has shape {arr.shape} {arr.dtype}, "
                f"expected {self.shape[1:]} {self.dtype} like the first file"
            )
        return arr
