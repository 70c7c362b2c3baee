"""Zarr v3 output: a plain group holding one array, or an OME-Zarr 0.5 image (optionally an image-label)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from emrepair.errors import OutputError
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


class _DropAbandonedTasks(logging.Filter):
    """Drops asyncio's complaints about the chunk writes that a failed zarr write abandoned."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not text.startswith(("Task was destroyed but it is pending", "_GatheringFuture exception was never",
                                    "Future exception was never retrieved", "Task exception was never retrieved"))


def quiet_abandoned_writes() -> None:
    """After a failed zarr write (a full disk), keep the tasks zarr left pending from printing tracebacks at exit:
    the error itself is reported once, as an OutputError."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _DropAbandonedTasks) for f in logger.filters):
        logger.addFilter(_DropAbandonedTasks())


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
        self._depth = self.chunks[0]
        self._slabs: dict[int, tuple[np.ndarray, set[int]]] = {}

    def _reopen(self) -> None:
        self._group = zarr.open_group(str(self.temp_path), mode="r+", zarr_format=3)
        array = self._group.get(self.array_name())
        if not isinstance(array, zarr.Array) or tuple(array.shape) != tuple(self.shape) or array.dtype != self.dtype:
            raise OutputError(f"the partial output {self.temp_path} does not hold a {self.shape} {self.dtype} array")
        self._array = array
        self.chunks = tuple(int(c) for c in array.chunks)  # type: ignore[assignment]
        self._depth = self.chunks[0]
        self._slabs = {}

    def _flush_data(self) -> None:
        self._flush(lambda z0: True)

    def array_name(self) -> str:
        """Path of the array inside the group."""
        return self.dataset

    def _guard(self, what: str, fn: Any) -> Any:
        def quietly() -> Any:
            try:
                return fn()
            except OSError:
                quiet_abandoned_writes()
                raise

        return super()._guard(what, quietly)

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        whole = (y, x) == (slice(0, self.shape[1]), slice(0, self.shape[2]))
        if whole and self._depth > 1:
            for i, zi in enumerate(range(z.start, z.stop)):
                self._buffer_section(zi, data[i])
            return
        self._flush(lambda z0: z0 < z.stop and z0 + self._depth > z.start)
        self._array[z, y, x] = data

    def _buffer_section(self, z: int, section: np.ndarray) -> None:
        """Collect whole sections per z-slab of chunks; write a slab once it is complete (one encode per chunk)."""
        z0 = z - z % self._depth
        if z0 not in self._slabs:
            self._flush(lambda _z0: len(self._slabs) >= 2)  # keep at most two open slabs in memory
            n = min(self._depth, self.shape[0] - z0)
            self._slabs[z0] = (np.zeros((n,) + self.shape[1:], dtype=self.dtype), set())
        block, done = self._slabs[z0]
        block[z - z0] = section
        done.add(z - z0)
        if len(done) == block.shape[0]:
            self._array[z0:z0 + block.shape[0]] = block
            del self._slabs[z0]

    def _flush(self, which: Any) -> None:
        """Write the buffered sections of the slabs selected by ``which(z0)``, section by section."""
        for z0 in sorted(self._slabs):
            if which(z0):
                block, done = self._slabs.pop(z0)
                for i in sorted(done):
                    self._array[z0 + i] = block[i]

    def _finish(self) -> None:
        self._flush(lambda z0: True)
        self._write_attrs()

    def _write_attrs(self) -> None:
        attrs = {k: to_jsonable(v) for k, v in self.attrs.items() if k not in ("resolution", "ome", "multiscales")}
        self._array.attrs.update({"resolution": list(self.voxel_size) if self.voxel_size else None, **attrs})


class OmeZarrWriter(ZarrWriter):
    """OME-Zarr 0.5: one level "0", axes z/y/x in nanometre; emrepair attributes sit beside "ome"."""

    def array_name(self) -> str:
        """The single resolution level."""
        return "0"

    def _write_attrs(self) -> None:
        ome: dict[str, Any] = {
            "version": NGFF_VERSION,
            "multiscales": [build_multiscales(self.voxel_size, name=self.path.name.removesuffix(".ome.zarr"))],
        }
        if self.labels:
            ome["image-label"] = {}
        attrs = {k: to_jsonable(v) for k, v in self.attrs.items() if k not in ("ome", "multiscales", "resolution")}
        self._group.attrs.update({"ome": ome, **attrs})
