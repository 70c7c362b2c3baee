"""Stream a volume pair by pair into its z-upsampled output: repaired originals at factor * z, synthesized between.

Work goes block by block (``UpsampleBlock``: whole pairs, whole output chunk slabs). Memory holds at most two
repaired runs, a few cached input sections, the current pair (or model window) of sections and the factor - 1
sections synthesized between them, so it does not grow with the depth of the volume.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.distributed.plan import RepairRun
from emrepair.engine.intensity import IntensityMap
from emrepair.io.base import Volume
from emrepair.pipelines.upsample_plan import INTERPOLATED_LABEL, positions

SectionSink = Callable[[int, np.ndarray, int], None]


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


def repair_run(vol: Volume, run: RepairRun, repairers: Mapping[str, Any],
               tile_progress: ProgressCallback | None = None) -> dict[int, np.ndarray]:
    """The sections of one defective run, synthesized by fix's repairers over whole sections; {z: section}."""
    from emrepair.distributed.repair import RegionJob, repairer_for, run_intensity

    whole = (slice(0, vol.shape[1]), slice(0, vol.shape[2]))
    job = RegionJob(vol, run, run.sections, whole[0], whole[1], run_intensity(vol, run, [whole]), tile_progress)
    images = repairer_for(repairers, run)(job)
    if len(images) != len(run.sections):
        raise ValueError(f"repairer returned {len(images)} sections for a run of {len(run.sections)}")
    return dict(zip(run.sections, images))


def interpolate_pair(a: np.ndarray, b: np.ndarray, ts: list[float], engine: Any,
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


def engine_synthesizer(engine: Any, factor: int,
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

    def __init__(self, vol: Volume, factor: int, runs: list[RepairRun], repairers: Mapping[str, Any],
                 synthesize: PairSynthesizer, tile_progress: ProgressCallback | None = None,
                 cache_size: int = 3) -> None:
        from emrepair.detection import KIND_LABELS

        if factor < 2:
            raise ValueError(f"factor must be at least 2, got {factor}")
        self.factor, self.repairers, self.synthesize = int(factor), repairers, synthesize
        self.tile_progress = tile_progress
        self.cache = SectionCache(vol, size=cache_size)
        self.run_of = {z: run for run in runs for z in run.sections}
        self.labels = {z: KIND_LABELS.get(kind, 1) for run in runs for z, kind in run.kinds.items()}
        self._repaired: OrderedDict[int, dict[int, np.ndarray]] = OrderedDict()

    def section(self, z: int) -> np.ndarray:
        """Input section ``z`` as repaired (a copy)."""
        run = self.run_of.get(z)
        if run is None:
            return self.cache.read_section(z)
        if run.first not in self._repaired:
            self._repaired[run.first] = repair_run(self.cache, run, self.repairers, self.tile_progress)
            while len(self._repaired) > 2:
                self._repaired.popitem(last=False)
        self._repaired.move_to_end(run.first)
        return self._repaired[run.first][z].copy()

    def write(self, block: Any, sink: SectionSink) -> None:
        """Hand every output section of ``block`` to ``sink(z_out, section, label)``, in z order."""
        pairs = set(block.pairs)
        for z in block.originals:
            sink(self.factor * z, self.section(z), self.labels.get(z, 0))
            if z in pairs:
                for j, image in enumerate(self.synthesize(z, self.section), start=1):
                    sink(self.factor * z + j, image, INTERPOLATED_LABEL)

    def close(self) -> None:
        """Drop the cached sections and runs."""
        self.cache.close()
        self._repaired.clear()


def stream_upsampled(vol: Volume, factor: int, runs: list[RepairRun], engine: Any,
                     repairers: Mapping[str, Any], sink: SectionSink, progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None) -> None:
    """Produce every output section in z order and hand it to ``sink(z_out, section, label)``.

    ``label`` is 0 for an original section, the defect kind's label (see ``KIND_LABELS``) for a repaired one,
    and ``INTERPOLATED_LABEL`` for a section synthesized between two originals.
    ``progress(done, total)`` counts section pairs. ``repairers`` are fix's (see ``fix.build_repairers``).
    """
    from emrepair.pipelines.upsample_blocks import plan_upsample_blocks

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
