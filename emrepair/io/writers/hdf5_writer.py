"""HDF5 output: one chunked, compressed dataset with a CREMI-style ``resolution`` attribute."""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from emrepair.errors import OutputError
from emrepair.io.metadata import to_jsonable
from emrepair.io.section_volume import SLAB_CACHE_BYTES
from emrepair.io.writers.base import VolumeWriter

H5_COMPRESSIONS = ("gzip", "lzf")


def h5_attr_value(value: Any) -> Any:
    """Strings and numbers stay native HDF5 attributes; anything structured is stored as a JSON string."""
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    return json.dumps(to_jsonable(value))


class HDF5Writer(VolumeWriter):
    """Writes ``<path>`` (HDF5) with the dataset at ``dataset``; attributes on the dataset."""

    def _open(self) -> None:
        # A chunk cache as large as one z-slab of chunks lets section-wise writes fill each chunk before it is
        # compressed, instead of re-compressing it once per section.
        slab = self.chunks[0] * self.shape[1] * self.shape[2] * self.dtype.itemsize
        nbytes = int(min(max(slab * 2, 1 << 20), SLAB_CACHE_BYTES))
        self._file = h5py.File(self.temp_path, "w", rdcc_nbytes=nbytes, rdcc_nslots=10007)
        comp = self.compression if self.compression in H5_COMPRESSIONS else "gzip"
        self._ds = self._file.create_dataset(
            self.dataset,
            shape=self.shape,
            dtype=self.dtype,
            chunks=self.chunks,
            compression=comp,
            compression_opts=4 if comp == "gzip" else None,
            fillvalue=0,
        )

    def _reopen(self) -> None:
        slab = self.chunks[0] * self.shape[1] * self.shape[2] * self.dtype.itemsize
        nbytes = int(min(max(slab * 2, 1 << 20), SLAB_CACHE_BYTES))
        self._file = h5py.File(self.temp_path, "r+", rdcc_nbytes=nbytes, rdcc_nslots=10007)
        ds = self._file.get(self.dataset)
        if not isinstance(ds, h5py.Dataset) or tuple(ds.shape) != tuple(self.shape) or ds.dtype != self.dtype:
            raise OutputError(f"the partial output {self.temp_path} does not hold a {self.shape} {self.dtype} dataset")
        self._ds = ds

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        self._ds[z, y, x] = data

    def _flush_data(self) -> None:
        self._file.flush()

    def _finish(self) -> None:
        resolution = self.voxel_size if self.voxel_size else (np.nan, np.nan, np.nan)
        self._ds.attrs["resolution"] = np.asarray(resolution, dtype=np.float64)
        self._ds.attrs["axes"] = "zyx"
        for key, value in self.attrs.items():
            if key not in ("resolution", "axes"):
                self._ds.attrs[key] = h5_attr_value(value)
        self._file.close()

    def _close(self) -> None:
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            self._file.close()
