"""The run repairer of a grid model (``reslice``): a gap filled from several good sections on each side."""

from __future__ import annotations

import numpy as np

from emrepair.distributed.repair import RegionJob, RunRepairer, read_window
from emrepair.engine.grid_repair import (
    fill_gap,
    grid_layout,
    known_around,
    repair_context,
)
from emrepair.engine.window import VolumeTiler


class GridRepairer:
    """Repairs a run with a grid model through ``tiler`` (a ``VolumeTiler``) on rows ``ratio`` apart per section
    (``grid_repair.grid_ratio``), from the run's neighbours and up to the model's ``repair_context`` more good sections
    each side (never a section in ``job.unusable``). Runs at a stack end go to ``fallback``. A cropped region is
    filled with ``context`` extra pixels each side, cut off afterwards.
    """

    def __init__(self, tiler: VolumeTiler, ratio: int, fallback: RunRepairer, context: int = 0) -> None:
        self.tiler, self.ratio, self.fallback = tiler, int(ratio), fallback
        self.context = int(context)
        self.known_context = repair_context(tiler.model)

    def __call__(self, job: RegionJob) -> list[np.ndarray]:
        run = job.run
        if run.one_sided:
            return self.fallback(job)
        height, width = job.vol.shape[1:]
        ys = slice(max(0, job.ys.start - self.context), min(height, job.ys.stop + self.context))
        xs = slice(max(0, job.xs.start - self.context), min(width, job.xs.stop + self.context))
        known = known_around(run.left, run.right, 1, self.known_context, lambda z: z not in job.unusable,
                             job.vol.shape[0])
        rows, total, target_rows = grid_layout(known, list(job.zs), 1, self.ratio)
        sections = [job.intensity.to_unit(read_window(job.vol, z, ys, xs)) for z in known]
        images = fill_gap(self.tiler, sections, rows, total, target_rows, job.tile_progress)
        crop = (slice(job.ys.start - ys.start, job.ys.stop - ys.start),
                slice(job.xs.start - xs.start, job.xs.stop - xs.start))
        return [job.intensity.from_unit(image[crop]) for image in images]
