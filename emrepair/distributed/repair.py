"""Write blocks of a repair: copy good sections, ask a run repairer for the synthesized ones, slab by slab and,
for huge sections, region by region so that memory never depends on the number of sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.detection import KIND_LABELS
from emrepair.distributed.blocks import Block, slabs_of
from emrepair.distributed.plan import RepairRun
from emrepair.distributed.region_repair import RegionFuser, correct_contrast, seam_weights
from emrepair.engine.intensity import IntensityMap
from emrepair.engine.interpolator import TiledInterpolator
from emrepair.io.base import Volume

Region = tuple[slice, slice]
MARK_KINDS = ("precipitate", "contrast")  # kept as they are unless repaired from their region (see BlockWriter)


@dataclass(frozen=True)
class RegionJob:
    """What a run repairer is asked for: sections ``zs`` of ``run``, cropped to the write region ``ys, xs``."""

    vol: Volume
    run: RepairRun
    zs: list[int]
    ys: slice
    xs: slice
    intensity: IntensityMap
    tile_progress: ProgressCallback | None = None
    unusable: frozenset[int] = frozenset()  # every section being repaired: never context for another run


class RunRepairer(Protocol):
    """Makes the sections of a run; returns one (len(ys), len(xs)) array of the stored dtype per z in ``job.zs``."""

    def __call__(self, job: RegionJob) -> list[np.ndarray]: ...


def read_window(vol: Volume, z: int, ys: slice, xs: slice) -> np.ndarray:
    """Section ``z`` cropped to ``ys, xs`` (a whole section goes through the reader's slab cache)."""
    if (ys.start, ys.stop, xs.start, xs.stop) == (0, vol.shape[1], 0, vol.shape[2]):
        return vol.read_section(z)
    return vol.read_region(slice(z, z + 1), ys, xs)[0]


def section_regions(shape: tuple[int, int], region_size: int | None) -> list[Region]:
    """The write regions of a section: the whole section, or a grid of ``region_size`` squares (edges smaller)."""
    height, width = shape
    if region_size is None or (height <= region_size and width <= region_size):
        return [(slice(0, height), slice(0, width))]
    return [(slice(y, min(y + region_size, height)), slice(x, min(x + region_size, width)))
            for y in range(0, height, region_size) for x in range(0, width, region_size)]


def run_intensity(vol: Volume, run: RepairRun, regions: list[Region]) -> IntensityMap:
    """The intensity map shared by a run: from its good neighbours, streamed region by region."""
    neighbours = [z for z in (run.left, run.right) if z is not None]
    if np.dtype(vol.dtype) == np.uint8 or not neighbours:
        return IntensityMap.for_sections([np.zeros((1, 1), dtype=vol.dtype)])
    if len(regions) == 1:
        ys, xs = regions[0]
        return IntensityMap.for_sections([read_window(vol, z, ys, xs) for z in neighbours])
    lo, hi = np.inf, -np.inf
    for z in neighbours:
        for ys, xs in regions:
            window = read_window(vol, z, ys, xs)
            finite = window[np.isfinite(window)] if window.dtype.kind == "f" else window
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not np.isfinite(lo):
        return IntensityMap(0.0, 1.0, np.dtype(vol.dtype))
    return IntensityMap(lo, hi if hi > lo else lo + 1.0, np.dtype(vol.dtype))


class InterpolationRepairer:
    """The default repair: interpolate between the run's nearest good sections with a tiled engine.

    A cropped region is interpolated with ``context`` extra pixels each side, cut off afterwards. A run at a stack
    end copies its single neighbour.
    """

    def __init__(self, engine: TiledInterpolator, context: int = 0) -> None:
        self.engine = engine
        self.context = int(context)
        self._cache: dict[tuple[int, int, int, int, int], np.ndarray] = {}

    def _unit(self, job: RegionJob, z: int, ys: slice, xs: slice) -> np.ndarray:
        key = (z, ys.start, ys.stop, xs.start, xs.stop)
        if key not in self._cache:
            if len(self._cache) >= 2:  # the two neighbours of the run at work
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = job.intensity.to_unit(read_window(job.vol, z, ys, xs))
        return self._cache[key]

    def __call__(self, job: RegionJob) -> list[np.ndarray]:
        run = job.run
        if run.one_sided:
            source = read_window(job.vol, run.right if run.left is None else run.left, job.ys, job.xs)
            return [source.copy() for _ in job.zs]
        height, width = job.vol.shape[1:]
        ys = slice(max(0, job.ys.start - self.context), min(height, job.ys.stop + self.context))
        xs = slice(max(0, job.xs.start - self.context), min(width, job.xs.stop + self.context))
        a, b = self._unit(job, run.left, ys, xs), self._unit(job, run.right, ys, xs)
        positions = run.positions()
        ts = [positions[z - run.first] for z in job.zs]
        images = self.engine.interpolate(a, b, ts, progress=job.tile_progress)
        crop = (slice(job.ys.start - ys.start, job.ys.stop - ys.start),
                slice(job.xs.start - xs.start, job.xs.stop - xs.start))
        return [job.intensity.from_unit(image[crop]) for image in images]


def repairer_for(repairers: Mapping[str, RunRepairer], run: RepairRun) -> RunRepairer:
    """The repairer for a run: the one for its kind when all its sections share one, else ``"default"``."""
    kinds = set(run.kinds.values())
    if len(kinds) == 1:
        return repairers.get(kinds.pop(), repairers["default"])
    return repairers["default"]


class BlockWriter:
    """Writes whole blocks into an output (and an optional label output), one chunk slab and region at a time.

    ``repairers`` maps a defect kind to the repairer of runs made only of that kind; ``"default"`` serves the rest.
    ``unusable`` names every section being repaired in the whole run (grid repairers never read them as context).

    Sections of the marking kinds (``MARK_KINDS``) keep their own pixels except in their region: a regional
    contrast change is corrected there by a gain and offset (``region_repair.correct_contrast``); staining
    precipitates are synthesized there like a lost region only with ``repair_precipitates`` (off by default).
    Without a region in their geometry, or with precipitates not to be repaired, they are copied unchanged.
    """

    def __init__(self, vol: Volume, writer: Any, masks: Any | None, repairers: Mapping[str, RunRepairer],
                 chunk_z: int, region_size: int | None = None,
                 tile_progress: ProgressCallback | None = None, unusable: frozenset[int] = frozenset(),
                 repair_precipitates: bool = False) -> None:
        if "default" not in repairers:
            raise ValueError("repairers need a 'default' entry")
        self.vol, self.writer, self.masks = vol, writer, masks
        self.repairers = repairers
        self.chunk_z = int(chunk_z)
        self.regions = section_regions(vol.shape[1:], region_size)
        self.tile_progress = tile_progress
        self.unusable = frozenset(unusable)
        self._intensity: dict[int, IntensityMap] = {}
        self.fuser = RegionFuser()
        self.repair_precipitates = bool(repair_precipitates)

    def repairer_for(self, run: RepairRun) -> RunRepairer:
        """The repairer for a run (see :func:`repairer_for`)."""
        return repairer_for(self.repairers, run)

    def write(self, block: Block) -> None:
        """Write every section of ``block``; the caller flushes and marks it done afterwards."""
        self._intensity = {run.first: run_intensity(self.vol, run, self.regions) for run in block.runs}
        for s0, s1 in slabs_of(block, self.chunk_z):
            for ys, xs in self.regions:
                stack, changed = self._slab_region(block, s0, s1, ys, xs)
                self.writer.write_region(slice(s0, s1), ys, xs, stack)
                if self.masks is not None:
                    self.masks.write_region(slice(s0, s1), ys, xs, self._labels(block, s0, s1, ys, xs, changed))

    def _slab_region(self, block: Block, s0: int, s1: int, ys: slice,
                     xs: slice) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The slab's sections in the region, and the changed-pixel masks of repairers that keep real pixels."""
        out = np.empty((s1 - s0, ys.stop - ys.start, xs.stop - xs.start), dtype=self.vol.dtype)
        synthesized: set[int] = set()
        changed: dict[int, np.ndarray] = {}
        for run in block.runs:
            zs = [z for z in run.sections if s0 <= z < s1]
            if not zs:
                continue
            job = RegionJob(self.vol, run, zs, ys, xs, self._intensity[run.first], self.tile_progress,
                            self.unusable | {z for r in block.runs for z in r.sections})
            repairer = self.repairer_for(run)
            images = repairer(job)
            changed_pixels = getattr(repairer, "changed_pixels", None)
            for z in zs if changed_pixels is not None else []:
                mask = changed_pixels(z, ys, xs)
                if mask is not None:
                    changed[z] = mask
            if len(images) != len(zs):
                raise ValueError(f"repairer returned {len(images)} sections for {len(zs)}")
            images = self._fuse_regions(job, repairer, images, changed)
            for z, image in zip(zs, images):
                if image.shape != out.shape[1:]:
                    raise ValueError(f"repairer returned shape {image.shape}, expected {out.shape[1:]}")
                out[z - s0] = image
                synthesized.add(z)
        for z in range(s0, s1):
            if z not in synthesized:
                out[z - s0] = read_window(self.vol, z, ys, xs)
        return out, changed

    def _fuse_regions(self, job: RegionJob, repairer: RunRepairer, images: list[np.ndarray],
                      changed: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Keep the own pixels of partly lost sections: fuse the synthesized section into their lost region.

        The synthesized section is the default repairer's (the one missing sections get); a section the run's
        repairer kept pixels of (a fold) keeps them too. ``changed`` gets a label array for each such section.
        """
        out = list(images)
        kinds = job.run.kinds
        unchanged = set()
        for i, z in enumerate(job.zs):  # marked sections that are not to change at all
            has_region = (job.run.folds.get(z) or {}).get("region") is not None
            if kinds.get(z) in MARK_KINDS and (not has_region or (kinds[z] == "precipitate"
                                                                  and not self.repair_precipitates)):
                out[i] = read_window(self.vol, z, job.ys, job.xs)
                changed[z] = np.zeros(out[i].shape, np.uint8)
                unchanged.add(z)
        regional = [i for i, z in enumerate(job.zs) if (job.run.folds.get(z) or {}).get("region") is not None
                    and z not in unchanged]
        if not regional:
            return out
        default = self.repairers["default"]
        synthesized = images if repairer is default else default(job)
        shape = tuple(self.vol.shape[1:])
        for i in regional:
            z = job.zs[i]
            original = read_window(self.vol, z, job.ys, job.xs)
            if kinds.get(z) == "contrast":
                changed[z] = self._correct_contrast(z, job, original, synthesized[i], out, i, shape)
                continue
            own = images[i] if repairer is not default else original
            fused = self.fuser.fuse(z, job.run.folds[z], own, synthesized[i], job.ys, job.xs, shape)
            if fused is None:
                continue
            out[i], seam = fused
            labels = np.zeros(seam.shape, np.uint8)
            if repairer is not default:
                kept = changed.get(z)
                labels[kept if kept is not None else slice(None)] = KIND_LABELS.get(job.run.kinds[z], 1)
            differs = out[i] != original
            if original.dtype.kind == "f":
                differs &= ~(np.isnan(out[i]) & np.isnan(original))
            labels[seam & differs] = KIND_LABELS["precipitate" if kinds.get(z) == "precipitate" else "partial"]
            labels[~differs] = 0
            changed[z] = labels
        return out

    def _correct_contrast(self, z: int, job: RegionJob, original: np.ndarray, reference: np.ndarray,
                          out: list[np.ndarray], i: int, shape: tuple[int, int]) -> np.ndarray:
        """Correct section ``z``'s contrast region against ``reference`` (its interpolation from the
        neighbours) into ``out[i]``; the label array of the pixels that changed."""
        region = self.fuser.region(z, job.run.folds[z])
        weights, distance = seam_weights(region, job.ys, job.xs, shape, self.fuser.seam)
        out[i], differs = correct_contrast(original, reference, weights, distance, self.fuser.seam)
        labels = np.zeros(original.shape, np.uint8)
        labels[differs] = KIND_LABELS["contrast"]
        return labels

    def _labels(self, block: Block, s0: int, s1: int, ys: slice, xs: slice,
                changed: dict[int, np.ndarray]) -> np.ndarray:
        """Labels of the synthesized pixels: whole sections, or only the changed pixels where a repairer said."""
        labels = np.zeros((s1 - s0, ys.stop - ys.start, xs.stop - xs.start), dtype=np.uint8)
        for run in block.runs:
            for z, kind in run.kinds.items():
                if s0 <= z < s1:
                    if z in changed and changed[z].dtype != bool:  # labels of their own (partly lost sections)
                        labels[z - s0] = changed[z]
                    elif z in changed:
                        labels[z - s0][changed[z]] = KIND_LABELS.get(kind, 1)
                    else:
                        labels[z - s0] = KIND_LABELS.get(kind, 1)
        return labels
