"""Stream a volume pair by pair into its z-upsampled output: repaired originals at factor * z, synthesized between.

Work goes block by block (``UpsampleBlock``: whole pairs, whole output chunk slabs). Memory holds at most two
repaired runs, a few cached input sections, the current pair (or model window) of sections and the factor - 1
sections synthesized between them, so it does not grow with the depth of the volume.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.distributed.plan import RepairRun
from emrepair.distributed.repair import RunRepairer
from emrepair.engine import TiledInterpolator
from emrepair.engine.intensity import IntensityMap
from emrepair.io.base import Volume
from emrepair.pipelines.upsample.plan import (
    INTERPOLATED_LABEL,
    UpsampleBlock,
    positions,
)

SectionSink = Callable[[int, np.ndarray, "int | np.ndarray"], None]  # label: one for the section, or per pixel


class SectionCache:
    """A Volume view that keeps the last ``size`` sections read, so the repair step and the pair stream can ask
    for the same neighbour without reading it twice from storage. Returns copies, like every reader."""

    def __init__(self, vol: Volume, size: int = 3) -> None:
        self.vol, self.info, self.size = vol, vol.info, int(size)
        self._held: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.vol.shape

    @property
    def dtype(self) -> np.dtype:
        return self.vol.dtype

    def __len__(self) -> int:
        return len(self.vol)

    def read_section(self, z: int) -> np.ndarray:
        """Section ``z``, from the cache when it was one of the last ``size`` read."""
        if z in self._held:
            self._held.move_to_end(z)
        else:
            self._held[z] = self.vol.read_section(z)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        return self._held[z].copy()

    def read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Passed to the volume (not cached)."""
        return self.vol.read_region(z, y, x)

    def close(self) -> None:
        """Drop the held sections (the volume itself belongs to the caller)."""
        self._held.clear()


class _RunStack:
    """An in-memory output for ``BlockWriter``: the sections ``first..first + depth - 1`` of one run."""

    def __init__(self, first: int, depth: int, shape: tuple[int, int], dtype: Any) -> None:
        self.first = int(first)
        self.data = np.zeros((int(depth), *shape), dtype=dtype)

    def write_region(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        """Keep ``data`` for sections ``z`` in window ``y, x``."""
        self.data[z.start - self.first:z.stop - self.first, y, x] = data


def repair_run(vol: Volume, run: RepairRun, repairers: Mapping[str, RunRepairer],
               tile_progress: ProgressCallback | None = None,
               unusable: frozenset[int] = frozenset()) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The sections of one defective run as fix repairs them, and their labels; {z: (section, labels)}.

    Fix's ``BlockWriter`` does the work, so a partly lost section keeps its own pixels beyond the seam of its lost
    region (``distributed.region_repair``) and a fold repairer keeps those away from the band; the uint8 labels
    (``KIND_LABELS``) mark exactly the pixels that differ from the input, or whole replaced sections.
    ``unusable`` names every section repaired in the whole run (never context for another run).
    """
    from emrepair.distributed.blocks import Block
    from emrepair.distributed.repair import BlockWriter

    shape = (int(vol.shape[1]), int(vol.shape[2]))
    depth = run.last - run.first + 1
    images, labels = _RunStack(run.first, depth, shape, vol.dtype), _RunStack(run.first, depth, shape, np.uint8)
    # One slab for the whole run (chunk depth run.last + 1), whole sections (no region grid).
    writer = BlockWriter(vol, images, labels, repairers, run.last + 1, None, tile_progress,
                         frozenset(unusable) | frozenset(run.sections))
    writer.write(Block(run.first, run.last + 1, (run,)))
    return {z: (images.data[z - run.first], labels.data[z - run.first]) for z in run.sections}


def region_repaired(runs: list[RepairRun]) -> list[int]:
    """Input z of the partly lost sections of ``runs``: only their lost region (and its seam) is synthesized."""
    return [z for run in runs for z in run.sections if (run.folds.get(z) or {}).get("region") is not None]


def interpolate_pair(a: np.ndarray, b: np.ndarray, ts: list[float], engine: TiledInterpolator,
                     tile_progress: ProgressCallback | None = None) -> list[np.ndarray]:
    """The sections at each t in ``ts`` between ``a`` and ``b`` (same (y, x) shape and dtype), in their dtype.

    All positions go through one engine call, so each tile of the pair is cut and batched once.
    """
    if a.ndim != 2 or a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"expected two (y, x) sections of one shape and dtype, got {a.shape} {a.dtype} "
                         f"and {b.shape} {b.dtype}")
    mapping = IntensityMap.for_sections([a, b])
    images = engine.interpolate(mapping.to_unit(a), mapping.to_unit(b), ts, progress=tile_progress)
    return [mapping.from_unit(image) for image in images]


PairSynthesizer = Callable[[int, Callable[[int], np.ndarray]], list[np.ndarray]]


def engine_synthesizer(engine: TiledInterpolator, factor: int,
                       tile_progress: ProgressCallback | None = None) -> PairSynthesizer:
    """``synthesize(p, section_of)``: the factor - 1 sections between sections p and p + 1, by a 2-D
    interpolation engine (``TiledInterpolator``), all positions in one engine call."""
    ts = positions(factor)

    def synthesize(p: int, section_of: Callable[[int], np.ndarray]) -> list[np.ndarray]:
        return interpolate_pair(section_of(p), section_of(p + 1), ts, engine, tile_progress)

    return synthesize


class BlockStreamer:
    """Writes blocks of an upsampled output (``UpsampleBlock``), each in z order, from repaired input sections.

    A repaired run is synthesized when a block first needs one of its sections and kept while it is among the
    last two runs used, so consecutive blocks in one process repair a run once; another process recomputes it
    with the same result. Input reads go through a SectionCache shared by all blocks of this streamer.
    """

    def __init__(self, vol: Volume, factor: int, runs: list[RepairRun], repairers: Mapping[str, RunRepairer],
                 synthesize: PairSynthesizer, tile_progress: ProgressCallback | None = None,
                 cache_size: int = 3) -> None:
        if factor < 2:
            raise ValueError(f"factor must be at least 2, got {factor}")
        self.factor, self.repairers, self.synthesize = int(factor), repairers, synthesize
        self.tile_progress = tile_progress
        self.cache = SectionCache(vol, size=cache_size)
        self.run_of = {z: run for run in runs for z in run.sections}
        self.unusable = frozenset(self.run_of)
        self._repaired: OrderedDict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = OrderedDict()

    def _repair(self, z: int) -> tuple[np.ndarray, np.ndarray]:
        run = self.run_of[z]
        if run.first not in self._repaired:
            self._repaired[run.first] = repair_run(self.cache, run, self.repairers, self.tile_progress,
                                                   self.unusable)
            while len(self._repaired) > 2:
                self._repaired.popitem(last=False)
        self._repaired.move_to_end(run.first)
        return self._repaired[run.first][z]

    def section(self, z: int) -> np.ndarray:
        """Input section ``z`` as repaired (a copy)."""
        if z not in self.run_of:
            return self.cache.read_section(z)
        return self._repair(z)[0].copy()

    def labels(self, z: int) -> int | np.ndarray:
        """The labels of input section ``z`` as repaired: 0 for a section kept as it is, else per pixel."""
        return self._repair(z)[1] if z in self.run_of else 0

    def write(self, block: UpsampleBlock, sink: SectionSink) -> None:
        """Hand every output section of ``block`` to ``sink(z_out, section, label)``, in z order; ``label`` is
        an int for the whole section or a uint8 array of its pixels (a repaired section)."""
        pairs = set(block.pairs)
        for z in block.originals:
            sink(self.factor * z, self.section(z), self.labels(z))
            if z in pairs:
                for j, image in enumerate(self.synthesize(z, self.section), start=1):
                    sink(self.factor * z + j, image, INTERPOLATED_LABEL)

    def close(self) -> None:
        """Drop the cached sections and runs."""
        self.cache.close()
        self._repaired.clear()


def stream_upsampled(vol: Volume, factor: int, runs: list[RepairRun], engine: TiledInterpolator,
                     repairers: Mapping[str, RunRepairer], sink: SectionSink, progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None) -> None:
    """Produce every output section in z order and hand it to ``sink(z_out, section, label)``.

    ``label`` is 0 for an original section, a uint8 array for a repaired one (the defect kind's label, see
    ``KIND_LABELS``, on every pixel that differs from the input: the lost region and its seam of a partly lost
    section, all of a missing one), and ``INTERPOLATED_LABEL`` for a section synthesized between two originals.
    ``progress(done, total)`` counts section pairs. ``repairers`` are fix's (see ``repairers.build_repairers``).
    """
    from emrepair.pipelines.upsample.plan import plan_upsample_blocks

    streamer = BlockStreamer(vol, factor, runs, repairers, engine_synthesizer(engine, factor, tile_progress),
                             tile_progress)
    pairs = vol.shape[0] - 1
    if progress is not None:
        progress(0, pairs)
    done = 0
    for block in plan_upsample_blocks(vol.shape[0], factor, factor):
        streamer.write(block, sink)
        done += len(block.pairs)
        if progress is not None and block.pairs:
            progress(done, pairs)
    streamer.close()
