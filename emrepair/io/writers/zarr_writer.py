"""Zarr v3 output: a plain group holding one array, or an OME-Zarr 0.5 image with its pyramid (optionally an
image-label, or an image with label images inside)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from emrepair.errors import OutputError
from emrepair.io.metadata import to_jsonable
from emrepair.io.ome import NGFF_VERSION, build_multiscales, pyramid_shapes
from emrepair.io.ome_labels import image_label_block, labels_group_attrs
from emrepair.io.writers.base import VolumeWriter

# When one of zarr's concurrent chunk writes fails (a full disk), its sibling coroutines are dropped unawaited and
# Python prints a RuntimeWarning about them at exit, after the one-line error that says what happened.
warnings.filterwarnings("ignore", message=r"coroutine '.*_concurrent_map\.<locals>\.run' was never awaited",
                        category=RuntimeWarning)


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
    """OME-Zarr 0.5: level "0" written section by section, then at commit the coarser levels of the pyramid
    (``emrepair.io.ome.pyramid_shapes``), the label images added by ``embed_labels`` under ``labels/`` and the
    metadata (axes z/y/x in nanometre; emrepair attributes sit beside "ome"). A label output (``labels=True``)
    is an image-label whose ``label_values`` (value -> LabelValue, default ``DETECT_LABELS``) give its colours
    and names."""

    label_values: dict[int, Any] | None = None

    def _open(self) -> None:
        self._embedded: list[tuple[str, Any, dict[int, Any] | None]] = []
        super()._open()

    def _reopen(self) -> None:
        self._embedded = []
        super()._reopen()

    def array_name(self) -> str:
        """Level 0, the full resolution."""
        return "0"

    def embed_labels(self, name: str, source: Any, values: dict[int, Any] | None) -> None:
        """At commit, copy the label volume ``source`` (open, of this output's shape; e.g. the run's ``--masks``)
        into ``labels/<name>`` as an image-label of this image (same levels, ``source.image`` = "../../")."""
        self._check_open()
        if tuple(int(s) for s in source.shape) != tuple(self.shape):
            raise OutputError(f"cannot add labels of shape {tuple(source.shape)} to {self.path} of shape {self.shape}")
        self._embedded.append((name, source, values))

    def _finish(self) -> None:
        from emrepair.io.writers.pyramid import write_pyramid

        self._flush(lambda z0: True)
        self._shapes = pyramid_shapes(self.shape)
        write_pyramid(self._group, self._shapes, self.chunks, zarr_compressor(self.compression), self.labels)
        self._write_labels()
        self._write_attrs()

    def _write_labels(self) -> None:
        from emrepair.io.writers.pyramid import copy_array, write_pyramid

        embedded = self._embedded
        if "labels" in self._group:
            del self._group["labels"]  # what an interrupted commit of this output left
        if not embedded:
            return
        labels = self._group.create_group("labels")
        compressor = zarr_compressor(self.compression)
        for name, source, values in embedded:
            image = labels.create_group(name)
            copy_array(source, image, "0", self.chunks, compressor)
            write_pyramid(image, self._shapes, self.chunks, compressor, labels=True)
            image.attrs["ome"] = {
                "version": NGFF_VERSION,
                "multiscales": [build_multiscales(self.voxel_size, name=name, levels=len(self._shapes))],
                "image-label": image_label_block(values, source_image="../../"),
            }
        labels.attrs.update(labels_group_attrs([name for name, _, _ in embedded], NGFF_VERSION))

    def _write_attrs(self) -> None:
        name = self.path.name.removesuffix(".ome.zarr")
        ome: dict[str, Any] = {
            "version": NGFF_VERSION,
            "multiscales": [build_multiscales(self.voxel_size, name=name, levels=len(self._shapes))],
        }
        if self.labels:
            ome["image-label"] = image_label_block(self.label_values)
        attrs = {k: to_jsonable(v) for k, v in self.attrs.items() if k not in ("ome", "multiscales", "resolution")}
        self._group.attrs.update({"ome": ome, **attrs})
