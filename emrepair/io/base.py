"""The volume interface every reader implements, and an in-memory volume for tests and small arrays.

Axes are always (z, y, x). Reading one section never loads the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

SUPPORTED_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))


@dataclass(frozen=True)
class VolumeInfo:
    """What is known about a volume without reading its pixels.

    Attributes:
        format: one of "hdf5", "zarr", "ome-zarr", "tiff", "image-folder", "array".
        path: the file or folder the volume lives in ("" for in-memory arrays).
        dataset: the dataset or array path inside the container (HDF5 dataset, Zarr array path), or None.
        shape: (z, y, x).
        dtype: numpy dtype of the stored values.
        chunks: storage chunk shape (z, y, x), or None when the format has none.
        voxel_size: (z, y, x) in nanometres, or None when unknown.
        compression: a short name of the codec ("gzip", "zstd", ...), or None.
        attrs: other metadata worth carrying to the output (JSON-serialisable).
    """

    format: str
    path: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    dataset: str | None = None
    chunks: tuple[int, int, int] | None = None
    voxel_size: tuple[float, float, float] | None = None
    compression: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary, as printed by ``emrepair info --json``."""
        return {
            "format": self.format,
            "path": self.path,
            "dataset": self.dataset,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "chunks": list(self.chunks) if self.chunks else None,
            "voxel_size": list(self.voxel_size) if self.voxel_size else None,
            "compression": self.compression,
        }


@runtime_checkable
class Volume(Protocol):
    """A lazy, section-wise 3-D volume (z, y, x)."""

    info: VolumeInfo

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def __len__(self) -> int: ...

    def read_section(self, z: int) -> np.ndarray:
        """Return section ``z`` as a new (y, x) array of the stored dtype."""
        ...

    def read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Return the (z, y, x) sub-block given by three slices."""
        ...

    def close(self) -> None: ...


class ArrayVolume:
    """A Volume over an in-memory numpy array; used by tests and by callers that already hold the data."""

    def __init__(self, array: np.ndarray, voxel_size: tuple[float, float, float] | None = None) -> None:
        if array.ndim != 3:
            raise ValueError(f"expected a 3-D (z, y, x) array, got shape {array.shape}")
        self._array = array
        self.info = VolumeInfo(
            format="array", path="", shape=tuple(int(s) for s in array.shape), dtype=array.dtype,
            voxel_size=voxel_size,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.info.shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    def __len__(self) -> int:
        return self.info.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for z in range(len(self)):
            yield self.read_section(z)

    def read_section(self, z: int) -> np.ndarray:
        """Return a copy of section ``z``."""
        return np.array(self._array[z])

    def read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Return a copy of the sub-block."""
        return np.array(self._array[z, y, x])

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "ArrayVolume":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
