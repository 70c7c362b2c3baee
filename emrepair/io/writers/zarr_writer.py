"""Zarr v3 output: a plain group holding one array, or an OME-Zarr 0.5 image (optionally an image-label)."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from emrepair.io.metadata import to_jsonable
from emrepair.io.ome import NGFF_VERSION, build_multiscales
from emrepair.io.writers.base import VolumeWriter


def zarr_compressor(name: str | None) -> Any:
    """The v3 codec for an input compression name; zstd (level 3) when the input had none or an unknown one."""
    if name == "gzip":
        return GzipCodec(level=5)
    if name == "blosc":
        return BloscCodec(cname="zstd", clevel=5)
    return ZstdCodec(level=3)


class ZarrWriter(VolumeWriter):
    """Plain Zarr: group at ``<path>``, array at ``dataset``, voxel size as the array's ``resolution`` attribute."""

    ome = False

    def _open(self) -> None:
        self._group = zarr.open_group(str(self.temp_path), mode="w", zarr_format=3)
        self._array = self._group.create_array(
            self.array_name(),
            shape=self.shape,
            chunks=self.chunks,
            dtype=self.dtype,
            compressors=zarr_compressor(self.compression),
            fill_value=0,
            dimension_names=["z", "y", "x"],
        )

    def array_name(self) -> str:
        """Path of the array inside the group."""
        return self.dataset

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        self._array[z, y, x] = data

    def _finish(self) -> None:
        attrs = {k: to_jsonable(v) for k, v in self.attrs.items() if k not in ("resolution", "ome", "multiscales")}
        self._array.attrs.update({"resolution": list(self.voxel_size) if self.voxel_size else None, **attrs})


class OmeZarrWriter(ZarrWriter):
    """OME-Zarr 0.5: one level "0", axes z/y/x in nanometre; emrepair attributes sit beside "ome"."""

    def array_name(self) -> str:
        """The single resolution level."""
        return "0"

    def _finish(self) -> None:
        ome: dict[str, Any] = {
            "version": NGFF_VERSION,
            "multiscales": [build_multiscales(self.voxel_size, name=self.path.name.removesuffix(".ome.zarr"))],
        }
        if self.labels:
            ome["image-label"] = {}
        attrs = {k: to_jsonable(v) for k, v in self.attrs.items() if k not in ("ome", "multiscales", "resolution")}
        self._group.attrs.update({"ome": ome, **attrs})
