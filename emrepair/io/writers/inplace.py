"""Writing repaired sections back into an existing volume (``emrepair fix --in-place`` and ``--undo`` only).

Only formats that update a section without rewriting the rest are supported: HDF5 datasets, Zarr arrays,
single-level OME-Zarr images and folders of TIFF sections. Readers never use this; the caller keeps backups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emrepair.errors import OutputError, UsageError
from emrepair.io.base import VolumeInfo
from emrepair.io.section_volume import one_line

IN_PLACE_FORMATS = ("hdf5", "zarr", "ome-zarr", "image-folder")


def check_in_place_format(info: VolumeInfo) -> None:
    """Raise UsageError unless the volume's format can be repaired in place."""
    if info.format not in IN_PLACE_FORMATS:
        raise UsageError(f"--in-place works on HDF5, Zarr, OME-Zarr and TIFF-folder inputs, not {info.format}; "
                         f"write a new output with -o instead")


class InPlaceWriter:
    """``write_region`` / ``write_section`` into the volume described by ``info``; ``flush``, ``release``."""

    def __init__(self, info: VolumeInfo, files: list[Path] | None = None) -> None:
        check_in_place_format(info)
        self.info = info
        self.shape = info.shape
        self.dtype = np.dtype(info.dtype)
        self._files = files
        self._handle: Any = None
        try:
            self._array = self._open()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"cannot open {info.path} for writing: {one_line(exc)}") from exc

    def _open(self) -> Any:
        info = self.info
        if info.format == "hdf5":
            import h5py

            self._handle = h5py.File(info.path, "r+")
            return self._handle[info.dataset]
        if info.format in ("zarr", "ome-zarr"):
            import zarr

            if info.format == "ome-zarr":
                root = zarr.open_group(info.path, mode="r")
                ms = dict(root.attrs).get("ome", dict(root.attrs)).get("multiscales") or [{}]
                if len(ms[0].get("datasets", [])) > 1:
                    raise UsageError(f"{info.path} has several resolution levels, which an in-place repair of one "
                                     f"level would leave stale; write a new output with -o instead")
            store = str(Path(info.path) / info.dataset) if info.dataset else info.path
            array = zarr.open_array(store, mode="r+")
            if array.ndim != 3:
                raise UsageError(f"--in-place needs a plain 3-D array, {info.path} has shape {array.shape}")
            return array
        if not self._files or any(f.suffix.lower() not in (".tif", ".tiff") for f in self._files):
            raise UsageError(f"--in-place on a folder needs TIFF sections; {info.path} holds other images")
        return None

    @property
    def array(self) -> Any:
        """The writable array (h5py dataset or Zarr array), or None for a folder of files."""
        return self._array

    def write_section(self, z: int, arr: np.ndarray) -> None:
        """Replace section ``z``."""
        self.write_region(slice(z, z + 1), slice(0, self.shape[1]), slice(0, self.shape[2]), np.asarray(arr)[None])

    def write_region(self, z: slice, y: slice, x: slice, arr: np.ndarray) -> None:
        """Replace a (z, y, x) block; the array must have the volume's dtype."""
        data = np.asarray(arr)
        if data.dtype != self.dtype:
            raise TypeError(f"cannot write {data.dtype} into a {self.dtype} volume")
        try:
            if self._array is not None:
                self._array[z, y, x] = data
                return
            import tifffile

            from emrepair.io.writers.tiff_writer import imagej_kwargs

            for i, zi in enumerate(range(z.start, z.stop)):
                path = self._files[zi]  # type: ignore[index]
                section = tifffile.imread(path) if (y, x) != (slice(0, self.shape[1]), slice(0, self.shape[2])) else None
                if section is None:
                    section = data[i]
                else:
                    section = np.array(section)
                    section[y, x] = data[i]
                temp = path.with_name(f".{path.name}.tmp-emrepair")
                tifffile.imwrite(temp, section, **imagej_kwargs(self.info.voxel_size, "YX"))
                temp.replace(path)
        except OSError as exc:
            raise OutputError(f"cannot write {self.info.path}: {one_line(exc)}") from exc

    def flush(self) -> None:
        """Push writes to the file system."""
        if self._handle is not None:
            self._handle.flush()

    def release(self) -> None:
        """Flush and close."""
        if self._handle is not None and self._handle.id.valid:
            self._handle.flush()
            self._handle.close()
        self._handle = None
