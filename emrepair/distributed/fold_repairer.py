"""Fold-aware repair of runs of folded sections: keep the folded section's trustworthy pixels, restore the band.

The band of each folded section is redrawn from the geometry the detection report gave (lines and width), so
every worker process and every resumed run sees exactly the same band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emrepair.detection.band_codec import decode_band
from emrepair.detection.fold_geometry import draw_band
from emrepair.distributed.repair import RegionJob, RunRepairer, read_window


class FoldRepairer:
    """Repairs runs of folded sections with a fold model (kind "fold", e.g. ``sff``).

    Each folded section is repaired from itself, the run's two nearest good sections and its band; pixels
    farther than ``reach`` from the band stay bit-identical. A folded first or last section is unfolded from its
    own pixels and its one neighbour (given as both neighbours), not replaced by a copy of it. A section without
    band geometry goes to ``fallback`` (whole-section interpolation). ``changed_pixels`` tells the label writer
    which pixels of the last region were synthesized.
    """

    def __init__(self, model: Any, device: str, fallback: RunRepairer, tile_size: int | None = None,
                 meta: Any = None) -> None:
        self.model = model
        self.meta = meta
        self.device = device
        self.fallback = fallback
        self.tile_size = tile_size
        from emrepair.engine.fold_pull import MOVE_REACH
        from emrepair.engine.fold_pull import REACH as FIT_REACH

        config = model.config
        # Pixels farther than this from the band come back bit-identical (the model's composition rule and
        # the farthest the pushed-back tissue moves); the fit of the pull looks FIT_REACH px beside the band.
        self.reach = max(int(config.reach) + int(config.transition), MOVE_REACH)
        self.context = max(self.reach, FIT_REACH) + int(model.halo)
        self._changed: dict[tuple[int, int, int], np.ndarray] = {}
        self._bands: dict[int, np.ndarray] = {}

    def __call__(self, job: RegionJob) -> list[np.ndarray]:
        from emrepair.engine.fold_repair import repair_fold_section

        run = job.run
        if any(z not in run.folds for z in job.zs) or (run.left is None and run.right is None):
            return self.fallback(job)
        height, width = job.vol.shape[1:]
        ys = slice(max(0, job.ys.start - self.context), min(height, job.ys.stop + self.context))
        xs = slice(max(0, job.xs.start - self.context), min(width, job.xs.stop + self.context))
        crop = (slice(job.ys.start - ys.start, job.ys.stop - ys.start),
                slice(job.xs.start - xs.start, job.xs.stop - xs.start))
        # at a stack end the one good neighbour stands for both
        left_z = run.left if run.left is not None else run.right
        right_z = run.right if run.right is not None else run.left
        left = job.intensity.to_unit(read_window(job.vol, left_z, ys, xs))
        right = left if right_z == left_z else job.intensity.to_unit(read_window(job.vol, right_z, ys, xs))
        self._changed.clear()
        out = []
        for z in job.zs:
            original = read_window(job.vol, z, ys, xs)
            band = self.band(z, (height, width), run.folds[z])[ys, xs]
            repaired = repair_fold_section(self.model, job.intensity.to_unit(original), left, right, band,
                                           device=self.device, tile_size=self.tile_size,
                                           progress=job.tile_progress)
            section = original[crop].copy()
            stored = job.intensity.from_unit(repaired.image[crop])
            # Untouched pixels stay bit-identical to the input, whatever the intensity map's rounding; a pixel
            # whose repair rounds back to its input value counts as unchanged.
            changed = repaired.changed[crop].astype(bool) & (stored != section)
            section[changed] = stored[changed]
            self._changed[(z, job.ys.start, job.xs.start)] = changed
            out.append(section)
        return out

    def band(self, z: int, shape: tuple[int, int], geometry: dict[str, Any]) -> np.ndarray:
        """The bool band mask of folded section ``z`` at full resolution (cached for the section at work)."""
        if z not in self._bands:
            self._bands.clear()
            if geometry.get("band") is not None:  # the band detection segmented from the pixels
                self._bands[z] = decode_band(geometry["band"], shape)
            else:
                self._bands[z] = draw_band(shape, geometry["lines"], float(geometry["width_px"]), (1.0, 1.0))
        return self._bands[z]

    def changed_pixels(self, z: int, ys: slice, xs: slice) -> np.ndarray | None:
        """Bool mask of the pixels of section ``z`` in region (ys, xs) that the last call synthesized, or None."""
        return self._changed.get((z, ys.start, xs.start))
