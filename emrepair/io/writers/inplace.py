"""Writing repaired sections back into an existing volume (``emrepair fix --in-place`` and ``--undo`` only).

Only formats that update a section without rewriting the rest are supported: HDF5 datasets, Zarr arrays,
single-level OME-Zarr images and folders of TIFF sections. Readers never use this; the caller keeps backups.
HDF5 writes are flushed one by one (the file is consistent between them) with a space reserve beside the file
(see hdf5_writer); TIFF sections are replaced by a rename. ``crash_point`` is a test hook called before every
write and rename: with ``EMREPAIR_TEST_KILL_AT=N`` the process dies at the N-th, as a SIGKILL would.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.errors import OutputError, UsageError
from emrepair.io.base import VolumeInfo
from emrepair.io.section_volume import one_line

IN_PLACE_FORMATS = ("hdf5", "zarr", "ome-zarr", "image-folder")
KILL_ENV = "EMREPAIR_TEST_KILL_AT"
KILLED_EXIT = 137
_crash_points = [0]


def crash_point() -> None:
    """Test hook before each write or rename: dies with os._exit at the N-th call when EMREPAIR_TEST_KILL_AT=N."""
    at = os.environ.get(KILL_ENV)
    if not at:
        return
    _crash_points[0] += 1
    if _crash_points[0] == int(at):
        os._exit(KILLED_EXIT)


def reset_crash_points() -> None:
    """Start counting crash points from zero (for a test's child process)."""
    _crash_points[0] = 0


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(source: Path, target: Path) -> None:
    """Copy ``source`` (bytes and times) over ``target`` through a hidden file and a rename, fsynced."""
    temp = target.with_name(f".{target.name}.tmp-emrepair")
    crash_point()
    shutil.copy2(source, temp)
    fsync_path(temp)
    crash_point()
    os.replace(temp, target)


def storage_block(info: VolumeInfo) -> tuple[int, int, int]:
    """The (z, y, x) shape of the unit a write rewrites whole: an HDF5 chunk, a Zarr chunk or shard, or a section
    (TIFF folders, contiguous HDF5)."""
    if info.format == "image-folder" or not info.chunks:
        return (1, int(info.shape[1]), int(info.shape[2]))
    return tuple(max(1, min(int(c), int(n))) for c, n in zip(info.chunks, info.shape))  # type: ignore[return-value]


def reset_unreadable_chunks(info: VolumeInfo, sections: list[int]) -> int:
    """Replace every HDF5 chunk in the chunk slabs of ``sections`` that cannot be decoded (torn by a kill) by raw
    zeros stored with its filters marked skipped, so that rewriting it need not read it (HDF5 reads an edge chunk
    before it writes one); returns how many. Only for slabs about to be rewritten whole from a backup. Other
    formats have nothing to do (Zarr replaces chunk files by a rename)."""
    if info.format != "hdf5" or not info.chunks:
        return 0
    import h5py

    block = storage_block(info)
    reset = 0
    with h5py.File(info.path, "r+") as f:
        ds = f[info.dataset]
        skip_all = (1 << ds.id.get_create_plist().get_nfilters()) - 1
        zeros = np.zeros(block, dtype=ds.dtype).tobytes()
        for zc in sorted({z - z % block[0] for z in sections}):
            for yc in range(0, int(info.shape[1]), block[1]):
                for xc in range(0, int(info.shape[2]), block[2]):
                    try:
                        ds[zc:zc + block[0], yc:yc + block[1], xc:xc + block[2]]
                    except OSError:
                        crash_point()
                        ds.id.write_direct_chunk((zc, yc, xc), zeros, filter_mask=skip_all)
                        reset += 1
    return reset


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
        except BaseException as exc:
            if self._handle is not None:
                self._handle.close()
            if isinstance(exc, (OSError, ValueError, KeyError, TypeError)):
                raise OutputError(f"cannot open {info.path} for writing: {one_line(exc)}") from exc
            raise

    def _open(self) -> Any:
        info = self.info
        if info.format == "hdf5":
            from emrepair.io.writers.hdf5_writer import GuardedH5File, cache_bytes

            path = Path(info.path)
            cache = cache_bytes(storage_block(info), self.shape, self.dtype.itemsize)
            self._handle = GuardedH5File(path, "r+", cache, path.with_name(f".{path.name}.emrepair-reserve"))
            return self._handle.file[info.dataset]
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
            crash_point()
            if self._handle is not None:
                self._handle.call(lambda: self._array.__setitem__((z, y, x), data))
                self._handle.call(self._handle.file.flush)  # consistent on disk between writes
                return
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
                fsync_path(temp)
                crash_point()
                temp.replace(path)
        except OSError as exc:
            if self.info.format in ("zarr", "ome-zarr"):
                from emrepair.io.writers.zarr_writer import quiet_abandoned_writes

                quiet_abandoned_writes()
            raise OutputError(f"cannot write {self.info.path}: {one_line(exc)}") from exc

    def restore_file(self, z: int, source: Path) -> None:
        """Put back the original file of section ``z`` (TIFF folders), byte for byte, by a rename."""
        try:
            replace_file(source, self._files[z])  # type: ignore[index]
        except OSError as exc:
            raise OutputError(f"cannot write {self.info.path}: {one_line(exc)}") from exc

    def flush(self) -> None:
        """Push writes to the file system."""
        if self._handle is not None and self._handle.file is not None:
            try:
                self._handle.call(self._handle.file.flush)
            except OSError as exc:
                raise OutputError(f"cannot write {self.info.path}: {one_line(exc)}") from exc

    def release(self) -> None:
        """Flush and close."""
        if self._handle is not None:
            try:
                self.flush()
            finally:
                self._handle.close()
        self._handle = None
