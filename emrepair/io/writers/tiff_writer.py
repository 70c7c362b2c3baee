"""TIFF outputs: an ImageJ hyperstack written through a memory map, or a folder of per-section TIFFs.

The stack's file is preallocated (``posix_fallocate``) before the first pixel goes through the map: a memory-
mapped write to a sparse file on a full disk kills the process with SIGBUS, while a failed preallocation is an
ordinary OSError. Folder sections are written under a hidden name and renamed, so none is ever cut short.

Voxel size goes into the ImageJ metadata (``spacing``, ``unit="nm"``) and X/YResolution tags; other attributes
(provenance) go into a JSON sidecar: ``<file>.emrepair.json`` beside a stack, ``emrepair.json`` inside a folder.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from emrepair.errors import OutputError
from emrepair.io.folder_volume import FOLDER_SIDECAR
from emrepair.io.metadata import to_jsonable
from emrepair.io.space import short_write_as_enospc
from emrepair.io.tiff_volume import sidecar_path
from emrepair.io.writers.base import VolumeWriter, move_into_place, temp_path_for


def imagej_kwargs(voxel_size: tuple[float, float, float] | None, axes: str = "ZYX") -> dict[str, Any]:
    """tifffile keyword arguments that record the voxel size the way ImageJ/Fiji read it."""
    meta: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {"imagej": True, "metadata": meta}
    if voxel_size:
        meta.update({"spacing": float(voxel_size[0]), "unit": "nm"})
        kwargs["resolution"] = (1.0 / voxel_size[2], 1.0 / voxel_size[1])
    return kwargs


def write_sidecar(path: Path, attrs: dict[str, Any]) -> None:
    """Write attributes as indented JSON."""
    path.write_text(json.dumps(to_jsonable(attrs), indent=2, sort_keys=True))


def preallocate(path: Path) -> None:
    """Allocate every block of ``path`` up to its size (OSError when the disk is too full to hold it)."""
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            os.posix_fallocate(fh.fileno(), 0, max(1, size))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def write_tiff_atomic(path: Path, section: np.ndarray, **kwargs: Any) -> None:
    """Write one TIFF under a hidden name beside ``path``, then rename it over ``path``."""
    temp = path.with_name(f".{path.name}.part-emrepair")
    try:
        tifffile.imwrite(temp, section, **kwargs)
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and short_write_as_enospc(exc) is not exc:
            raise short_write_as_enospc(exc) from exc
        raise


class TiffStackWriter(VolumeWriter):
    """A multi-page ImageJ TIFF; pixels go through a tifffile memory map so the volume is never held in RAM."""

    def _open(self) -> None:
        self._sidecar_temp = temp_path_for(sidecar_path(self.path))
        self._mm: np.memmap | None = tifffile.memmap(
            self.temp_path, shape=self.shape, dtype=self.dtype, **imagej_kwargs(self.voxel_size)
        )
        preallocate(self.temp_path)

    def _reopen(self) -> None:
        self._sidecar_temp = temp_path_for(sidecar_path(self.path))
        preallocate(self.temp_path)
        self._mm = tifffile.memmap(self.temp_path, mode="r+")
        if tuple(self._mm.shape) != tuple(self.shape) or self._mm.dtype != self.dtype:
            raise OutputError(f"the partial output {self.temp_path} does not hold a {self.shape} {self.dtype} stack")

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        assert self._mm is not None
        self._mm[z, y, x] = data

    def _flush_data(self) -> None:
        if self._mm is not None:
            self._mm.flush()

    def _finish(self) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._mm = None
        write_sidecar(self._sidecar_temp, self.attrs)

    def _close(self) -> None:
        self._mm = None

    def _temp_paths(self) -> list[Path]:
        return [self.temp_path, self._sidecar_temp] if hasattr(self, "_sidecar_temp") else [self.temp_path]

    def _move(self) -> None:
        move_into_place(self.temp_path, self.path, replace=self.replace_existing)
        os.replace(self._sidecar_temp, sidecar_path(self.path))


class TiffFolderWriter(VolumeWriter):
    """A folder of ``z00000.tif``... (one ImageJ TIFF per section); sections never written are filled with zeros."""

    def _open(self) -> None:
        self.temp_path.mkdir()
        self._digits = max(5, len(str(self.shape[0] - 1)))
        self._written: set[int] = set()

    def _reopen(self) -> None:
        if not self.temp_path.is_dir():
            raise OutputError(f"the partial output {self.temp_path} is not a folder")
        self._digits = max(5, len(str(self.shape[0] - 1)))
        self._written = {z for z in range(self.shape[0]) if (self.temp_path / self.section_name(z)).is_file()}

    def section_name(self, z: int) -> str:
        """File name of section ``z``."""
        return f"z{z:0{self._digits}d}.tif"

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        for i, zi in enumerate(range(z.start, z.stop)):
            if (y, x) == (slice(0, self.shape[1]), slice(0, self.shape[2])):
                section = data[i]
            else:  # read-modify-write of a partial section
                section = self._load(zi)
                section[y, x] = data[i]
            self._save(zi, section)

    def _load(self, z: int) -> np.ndarray:
        if z in self._written:
            try:
                section = tifffile.imread(self.temp_path / self.section_name(z))
            except (OSError, ValueError, tifffile.TiffFileError):
                section = None  # cut short by a killed run; the section is being rewritten anyway
            if section is not None and section.shape == self.shape[1:] and section.dtype == self.dtype:
                return np.array(section)
        return np.zeros(self.shape[1:], dtype=self.dtype)

    def _save(self, z: int, section: np.ndarray) -> None:
        write_tiff_atomic(self.temp_path / self.section_name(z), section, **imagej_kwargs(self.voxel_size, "YX"))
        self._written.add(z)

    def _finish(self) -> None:
        for z in range(self.shape[0]):
            if z not in self._written:
                self._save(z, np.zeros(self.shape[1:], dtype=self.dtype))
        write_sidecar(self.temp_path / FOLDER_SIDECAR, self.attrs)

    def _temp_paths(self) -> list[Path]:
        return [self.temp_path]
