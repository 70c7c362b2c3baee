"""Stream a volume pair by pair into its z-upsampled output: repaired originals at factor * z, synthesized between.

Memory holds at most one repair run (while it is synthesized), three cached input sections, the current pair
of sections and the factor - 1 sections synthesized between them, so it does not grow with the depth of the volume.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from emrepair.io.base import Volume
from emrepair.pipelines.intensity import IntensityMap
from emrepair.pipelines.plan import RepairRun
from emrepair.pipelines.upsample_plan import INTERPOLATED_LABEL, positions

ProgressCallback = Callable[[int, int], None]
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


def repaired_sections(vol: Volume, runs: list[RepairRun], repairers: Mapping[str, Any],
                      tile_progress: ProgressCallback | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z, section)`` for z = 0..depth-1 in order, each defective run replaced as ``emrepair fix`` does.

    Good sections are yielded unchanged; a run's sections are synthesized when the stream reaches the run's
    first section, and only that run is held. Reads go through a small SectionCache, so each input section
    is read from storage once.
    """
    cached = SectionCache(vol)
    run_at = {run.first: run for run in runs}
    pending: dict[int, np.ndarray] = {}
    for z in range(vol.shape[0]):
        if z in run_at:
            pending = repair_run(cached, run_at[z], repairers, tile_progress)
        yield z, (pending.pop(z) if z in pending else cached.read_section(z))


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


def stream_upsampled(vol: Volume, factor: int, runs: list[RepairRun], engine: Any,
                     repairers: Mapping[str, Any], sink: SectionSink, progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None) -> None:
    """Produce every output section in z order and hand it to ``sink(z_out, section, label)``.

    ``label`` is 0 for an original section, the defect kind's label (see ``KIND_LABELS``) for a repaired one,
    and ``INTERPOLATED_LABEL`` for a section synthesized between two originals.
    ``progress(done, total)`` counts section pairs. ``repairers`` are fix's (see ``fix.build_repairers``).
    """
    from emrepair.detect import KIND_LABELS

    if factor < 2:
        raise ValueError(f"factor must be at least 2, got {factor}")
    kinds = {z: kind for run in runs for z, kind in run.kinds.items()}
    ts = positions(factor)
    pairs = vol.shape[0] - 1
    if progress is not None:
        progress(0, pairs)
    previous: np.ndarray | None = None
    for z, section in repaired_sections(vol, runs, repairers, tile_progress):
        if previous is not None:
            for j, image in enumerate(interpolate_pair(previous, section, ts, engine, tile_progress), start=1):
                sink(factor * (z - 1) + j, image, INTERPOLATED_LABEL)
            if progress is not None:
                progress(z, pairs)
        sink(factor * z, section, KIND_LABELS.get(kinds[z], 1) if z in kinds else 0)
        previous = section
