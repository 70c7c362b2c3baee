"""Lazy reader for a folder of per-section TIFF or PNG images in natural order (1, 2, ..., 10).

Folder inputs are exact: every entry that looks like a section (a non-hidden name ending in .tif, .tiff or .png)
is a section. One that cannot be read (a dangling or looping link, a FIFO, a device, a folder, no permission, a
damaged header) is an error naming it, or, with ``skip_unreadable``, a warning naming it; never a silent z shift.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from emrepair.errors import InputError, InputWarning
from emrepair.io.base import VolumeInfo
from emrepair.io.paths import IMAGE_SUFFIXES, entry_problem, natural_key, require_regular
from emrepair.io.section_volume import (DECODE_ERRORS, SectionVolume, check_dtype, check_volume_shape,
                                        describe_decode_error)
from emrepair.io.tiff_volume import imagej_voxel_size, read_sidecar

FOLDER_SIDECAR = "emrepair.json"
SKIP_HINT = "pass --skip-unreadable to leave it out (later sections then move up by one)"
_READ_ERRORS = DECODE_ERRORS + (SyntaxError, Image.DecompressionBombError, tifffile.TiffFileError)
Image.MAX_IMAGE_PIXELS = None  # sections are big by nature; the shape check bounds them instead


def candidate_entries(folder: Path) -> list[Path]:
    """Every entry directly in ``folder`` that looks like a section (non-hidden, .tif/.tiff/.png, whatever its
    file type), naturally sorted by name."""
    try:
        names = [e.name for e in os.scandir(folder)]
    except OSError as exc:
        raise InputError(f"cannot list folder {folder}: {exc.strerror or describe_decode_error(exc)}") from exc
    found = [folder / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: natural_key(p.name))


def section_files(folder: Path) -> list[Path]:
    """The section entries of ``folder`` in z order (see :func:`candidate_entries`)."""
    return candidate_entries(folder)


def probe_image(path: Path) -> tuple[tuple[int, ...], np.dtype | None]:
    """Shape (and, for TIFF, dtype) from a section file's header, without decoding its pixels.

    Raises:
        InputError: the file is not a regular file or its header cannot be parsed.
    """
    require_regular(path, "section file ")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return tuple(int(s) for s in series.shape), np.dtype(series.dtype)
        with Image.open(path) as im:
            bands = len(im.getbands())
            width, height = im.size
            return ((height, width) if bands == 1 else (height, width, bands)), None
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path}: {describe_decode_error(exc)}") from exc


def read_image(path: Path) -> np.ndarray:
    """One section image as a 2-D array (TIFF via tifffile, PNG via Pillow); refuses anything but regular files."""
    require_regular(path, "section file ")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                arr = np.asarray(im)
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path}: {describe_decode_error(exc)}") from exc
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2-D greyscale section, got shape {arr.shape}")
    return arr


class ImageFolderVolume(SectionVolume):
    """A folder with one image per section; the first image fixes shape and dtype, every other must match.

    Every section file's type and header are checked when the folder is opened, before any pixels are read.
    ``skip_unreadable`` leaves out the entries that fail (with a warning naming them) instead of refusing.
    """

    def __init__(self, folder: Path, skip_unreadable: bool = False) -> None:
        where = str(folder)
        entries = candidate_entries(folder)
        if not entries:
            raise InputError(f"{where}: folder holds no .tif/.tiff/.png section images")
        self._files, self.skipped = self._checked(entries, where, skip_unreadable)
        first = read_image(self._files[0])
        voxel = None
        if self._files[0].suffix.lower() in (".tif", ".tiff"):
            try:
                with tifffile.TiffFile(self._files[0]) as tif:
                    voxel = imagej_voxel_size(tif)
            except _READ_ERRORS:
                voxel = None
        self.info = VolumeInfo(
            format="image-folder",
            path=where,
            shape=check_volume_shape((len(self._files),) + first.shape, where),
            dtype=check_dtype(first.dtype, str(self._files[0])),
            voxel_size=voxel,
            attrs=read_sidecar(folder / FOLDER_SIDECAR),
        )
        self._check_headers(first)

    @staticmethod
    def _checked(entries: list[Path], where: str, skip: bool) -> tuple[list[Path], list[str]]:
        """The entries that are readable regular files with a parseable header, and the skipped ones' reasons."""
        kept: list[Path] = []
        skipped: list[str] = []
        for z, path in enumerate(entries):
            problem = entry_problem(path)
            if problem is None:
                try:
                    shape, _ = probe_image(path)
                    if len(shape) != 2:
                        problem = f"is not a 2-D greyscale image (shape {shape})"
                except InputError as exc:
                    problem = f"cannot be read ({str(exc).removeprefix(f'cannot read {path}: ')})"
            if problem is None:
                kept.append(path)
                continue
            if not skip:
                raise InputError(f"{where}: section file {path.name} (z={z} in name order) {problem}; {SKIP_HINT}")
            skipped.append(f"{path.name} ({problem})")
        if skipped:
            shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            warnings.warn(f"{where}: skipped {len(skipped)} unreadable section file(s), so the sections after each "
                          f"move up by one: {shown}", InputWarning, stacklevel=3)
        if not kept:
            raise InputError(f"{where}: none of the {len(entries)} section files can be read")
        return kept, skipped

    def _check_headers(self, first: np.ndarray) -> None:
        """Every file's header shape (and TIFF dtype) must match the first section's."""
        for z, path in enumerate(self._files[1:], start=1):
            shape, dtype = probe_image(path)
            if shape != first.shape or (dtype is not None and dtype.newbyteorder("=") != self.dtype):
                found = f"{shape} {dtype}" if dtype is not None else f"{shape}"
                raise InputError(f"{path}: section {z} has shape {found}, expected {first.shape} {self.dtype} "
                                 f"like the first file {self._files[0].name}")

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
