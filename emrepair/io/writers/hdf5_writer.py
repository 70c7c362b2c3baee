"""HDF5 output: one chunked, compressed dataset with a CREMI-style ``resolution`` attribute.

HDF5 cannot close a file whose write failed for want of space (it crashes the process at exit instead), so the
writer keeps a preallocated reserve file beside its output while it writes: on a write error it deletes the
reserve, flushes and closes the partial file cleanly (it stays resumable), and raises one OSError.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from emrepair.errors import OutputError
from emrepair.io.metadata import hdf5_attr_value
from emrepair.io.section_volume import SLAB_CACHE_BYTES, one_line
from emrepair.io.space import SpaceReserve
from emrepair.io.writers.base import VolumeWriter

H5_COMPRESSIONS = ("gzip", "lzf")
# Room kept free for the final flush beyond the chunk cache: metadata (chunk index, attributes).
RESERVE_EXTRA_BYTES = 4 << 20


def h5_os_error(exc: BaseException) -> OSError:
    """One short OSError for an h5py failure (whose text spans lines and names the errno inside the message)."""
    text = str(exc)
    found = re.search(r"errno = (\d+)", text)
    code = int(found.group(1)) if found else getattr(exc, "errno", None)
    if code:
        return OSError(code, os.strerror(code))
    return OSError(errno.EIO, one_line(exc))


def reserve_path_for(temp: Path) -> Path:
    """The hidden reserve file kept beside an HDF5 file being written."""
    return temp.with_name(temp.name + "-reserve")


def cache_bytes(chunks: tuple[int, ...], shape: tuple[int, ...], itemsize: int) -> int:
    """The chunk cache for section-wise writes: one z-slab of chunks, twice, within SLAB_CACHE_BYTES."""
    slab = chunks[0] * shape[1] * shape[2] * itemsize
    return int(min(max(slab * 2, 1 << 20), SLAB_CACHE_BYTES))


class GuardedH5File:
    """An h5py file opened for writing with a space reserve; ``call(fn)`` runs an h5py operation and, when it fails,
    frees the reserve and closes the file cleanly before raising one OSError."""

    def __init__(self, path: Path, mode: str, cache: int, reserve: Path) -> None:
        self.reserve = SpaceReserve(reserve, cache + RESERVE_EXTRA_BYTES)
        try:
            self.file: Any = h5py.File(path, mode, rdcc_nbytes=cache, rdcc_nslots=10007)
        except (OSError, RuntimeError) as exc:
            self.reserve.release()
            raise h5_os_error(exc) from exc

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on an HDF5 error, stop cleanly and raise it as an OSError."""
        try:
            return fn()
        except (OSError, RuntimeError) as exc:
            self.close()
            raise h5_os_error(exc) from exc

    def close(self) -> None:
        """Free the reserve, then flush and close the file (errors closing a failed file are dropped)."""
        self.reserve.release()
        if self.file is not None and self.file.id.valid:
            try:
                self.file.close()
            except (OSError, RuntimeError):
                pass
        self.file = None


def h5_attr_value(value: Any) -> Any:
    """Numbers, strings and arrays stay native HDF5 attributes (arrays keep their type); dicts and mixed lists
    are stored as JSON strings (emrepair.io.metadata.hdf5_attr_value)."""
    return hdf5_attr_value(value)


class HDF5Writer(VolumeWriter):
    """Writes ``<path>`` (HDF5) with the dataset at ``dataset``; attributes on the dataset."""

    def _open(self) -> None:
        # A chunk cache as large as one z-slab of chunks lets section-wise writes fill each chunk before it is
        # compressed, instead of re-compressing it once per section.
        self._h5 = self._guarded("w")
        comp = self.compression if self.compression in H5_COMPRESSIONS else "gzip"
        self._ds = self._h5.call(lambda: self._h5.file.create_dataset(
            self.dataset,
            shape=self.shape,
            dtype=self.dtype,
            chunks=self.chunks,
            compression=comp,
            compression_opts=4 if comp == "gzip" else None,
            fillvalue=0,
        ))

    def _guarded(self, mode: str) -> GuardedH5File:
        cache = cache_bytes(self.chunks, self.shape, self.dtype.itemsize)
        return GuardedH5File(self.temp_path, mode, cache, reserve_path_for(self.temp_path))

    def _reopen(self) -> None:
        self._h5 = self._guarded("r+")
        ds = self._h5.file.get(self.dataset)
        if not isinstance(ds, h5py.Dataset) or tuple(ds.shape) != tuple(self.shape) or ds.dtype != self.dtype:
            self._h5.close()
            raise OutputError(f"the partial output {self.temp_path} does not hold a {self.shape} {self.dtype} dataset")
        self._ds = ds

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        if self._h5.file is None:
            raise OSError(errno.EIO, "the file was closed after an earlier write error")
        self._h5.call(lambda: self._ds.__setitem__((z, y, x), data))

    def _flush_data(self) -> None:
        if self._h5.file is not None:
            self._h5.call(self._h5.file.flush)

    def _finish(self) -> None:
        def attrs() -> None:
            resolution = self.voxel_size if self.voxel_size else (np.nan, np.nan, np.nan)
            self._ds.attrs["resolution"] = np.asarray(resolution, dtype=np.float64)
            self._ds.attrs["axes"] = "zyx"
            for key, value in self.attrs.items():
                if key not in ("resolution", "axes"):
                    self._ds.attrs[key] = h5_attr_value(value)
            self._h5.file.flush()

        self._h5.call(attrs)  # with the reserve still held: a full disk here leaves a resumable file
        self._h5.reserve.release()
        file, self._h5.file = self._h5.file, None
        try:
            file.close()  # everything is flushed already; never retried (closing a failed file twice crashes)
        except (OSError, RuntimeError) as exc:
            raise h5_os_error(exc) from exc

    def _close(self) -> None:
        if getattr(self, "_h5", None) is not None:
            self._h5.close()

    def _temp_paths(self) -> list[Path]:
        return [self.temp_path, reserve_path_for(self.temp_path)]
