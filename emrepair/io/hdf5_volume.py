"""Lazy reader for a 3-D dataset inside an HDF5 file (CREMI-style ``resolution`` attribute for the voxel size)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from emrepair.errors import InputError, InputWarning
from emrepair.io.base import VolumeInfo
from emrepair.io.metadata import carried_value, voxel_size_or_none
from emrepair.io.section_volume import SectionVolume, check_dtype, check_volume_shape, one_line
from emrepair.io.zarr_store import SPARSE_WARNING_FRACTION, ChunkIndex

# Indexing more allocated chunks than this takes seconds; beyond it the index is not built.
MAX_INDEXED_CHUNKS = 200_000

# Attributes that describe the layout and are re-derived on write rather than carried over.
_LAYOUT_ATTRS = {"resolution", "DIMENSION_LIST"}


def list_datasets(group: h5py.Group) -> list[tuple[str, tuple[int, ...]]]:
    """All datasets below ``group`` as (path, shape), in file order."""
    found: list[tuple[str, tuple[int, ...]]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append((name, tuple(obj.shape)))

    group.visititems(visit)
    return found


def pick_dataset(names_shapes: list[tuple[str, tuple[int, ...]]], where: str) -> str:
    """The single 3-D dataset's path (or the only dataset); InputError listing the candidates when there are none or several."""
    three_d = [n for n, s in names_shapes if len(s) == 3]
    if len(three_d) == 1:
        return three_d[0]
    if len(names_shapes) == 1:
        return names_shapes[0][0]  # the only dataset: the shape check then says what is wrong with it
    if not names_shapes:
        raise InputError(f"{where}: contains no datasets")
    listing = ", ".join(f"{n} {s}" for n, s in names_shapes)
    if not three_d:
        raise InputError(f"{where}: no 3-D dataset found (has {listing})")
    raise InputError(f"{where}: holds several 3-D datasets, choose one with --dataset: {', '.join(three_d)}")


def hdf5_chunk_index(ds: h5py.Dataset) -> ChunkIndex | None:
    """Which chunks of a chunked 3-D dataset are allocated (from the chunk B-tree, no pixels read); None for
    contiguous datasets and for very many chunks."""
    if ds.chunks is None or len(ds.shape) != 3:
        return None
    count = ds.id.get_num_chunks()
    if count > MAX_INDEXED_CHUNKS:
        return None
    total = math.prod(math.ceil(s / c) for s, c in zip(ds.shape, ds.chunks))
    layers = frozenset(int(ds.id.get_chunk_info(i).chunk_offset[0]) // ds.chunks[0] for i in range(count))
    return ChunkIndex(count, total, layers, int(ds.chunks[0]))


class HDF5Volume(SectionVolume):
    """A 3-D HDF5 dataset, opened read-only; sections are read on demand."""

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        where = str(path)
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(f"cannot read {where}: {one_line(exc)}") from exc
        try:
            name = dataset.strip("/") if dataset else pick_dataset(list_datasets(self._file), where)
            obj = self._file.get(name)
            if obj is None:
                raise InputError(f"{where}: no dataset '{name}' (has {', '.join(n for n, _ in list_datasets(self._file))})")
            if not isinstance(obj, h5py.Dataset):
                inner = list_datasets(obj)
                name = f"{name}/{pick_dataset(inner, f'{where}/{name}')}"
                obj = self._file[name]
            shape = check_volume_shape(obj.shape, f"{where}/{name}")
            dtype = check_dtype(obj.dtype, f"{where}/{name}")
            self._ds = obj
            self.info = VolumeInfo(
                format="hdf5",
                path=where,
                shape=shape,
                dtype=dtype,
                dataset=name,
                chunks=tuple(int(c) for c in obj.chunks) if obj.chunks else None,
                voxel_size=voxel_size_or_none(obj.attrs.get("resolution")),
                compression=obj.compression,
                attrs=self._carried_attrs(obj),
            )
            # emrepair's own outputs (masks above all) are complete and sparse by nature: not judged
            self.chunk_index = None if "emrepair" in self.info.attrs else hdf5_chunk_index(obj)
            if self.chunk_index is not None:
                self.chunk_index.check_plausible(shape, dtype.itemsize, f"{where}/{name}")
                if self.chunk_index.fraction < SPARSE_WARNING_FRACTION:
                    idx = self.chunk_index
                    warnings.warn(f"{where}/{name}: only {idx.written} of the {idx.total} chunks its shape {shape} "
                                  f"declares are stored ({100 * idx.fraction:.1f} %); "
                                  f"{len(idx.unwritten_sections(shape[0]))} sections were never written and read "
                                  f"as the fill value", InputWarning, stacklevel=3)
        except InputError:
            self._file.close()
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            self._file.close()
            raise InputError(f"cannot read {where}: {one_line(exc)}") from exc

    @staticmethod
    def _carried_attrs(ds: h5py.Dataset) -> dict[str, Any]:
        """Dataset attributes other than layout ones, as JSON-safe values (JSON strings decoded)."""
        out: dict[str, Any] = {}
        for key, value in ds.attrs.items():
            if key in _LAYOUT_ATTRS:
                continue
            try:
                out[key] = carried_value(value)  # arrays stay arrays, with their dtype
            except (TypeError, ValueError):
                continue  # references or other non-portable attribute types are not carried
        return out

    def _read_section(self, z: int) -> np.ndarray:
        return self._ds[z]

    def _read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        if all(s.step in (None, 1) for s in (z, y, x)):
            return self._ds[z, y, x]
        return super()._read_region(z, y, x)

    def close(self) -> None:
        """Close the HDF5 file."""
        super().close()
        if self._file.id.valid:
            self._file.close()
