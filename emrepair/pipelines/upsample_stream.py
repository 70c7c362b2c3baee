"""Stream a volume pair by pair into its z-upsampled output: repaired originals at factor * z, synthesized between.

Memory holds at most one repair run (while it is synthesized), the current pair of sections and the factor - 1
sections synthesized between them, so it does not grow with the depth of the volume.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from emrepair.io.base import Volume
from emrepair.pipelines.intensity import IntensityMap
from emrepair.pipelines.plan import RepairRun
from emrepair.pipelines.upsample_plan import INTERPOLATED_LABEL, positions

ProgressCallback = Callable[[int, int], None]
SectionSink = Callable[[int, np.ndarray, int], None]


def repaired_sections(vol: Volume, runs: list[RepairRun], engine: Any,
                      tile_progress: ProgressCallback | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z, section)`` for z = 0..depth-1 in order, each defective run replaced as ``emrepair fix`` does.

    Good sections are read once and yielded unchanged; a run's sections are synthesized when the stream
    reaches the run's first section (reading its two good neighbours), and only that run is held.
    """
    from emrepair.pipelines.fix import _synthesize_run

    run_at = {run.first: run for run in runs}
    pending: dict[int, np.ndarray] = {}
    for z in range(vol.shape[0]):
        if z in run_at:
            pending = _synthesize_run(vol, run_at[z], engine, tile_progress)
        yield z, (pending.pop(z) if z in pending else vol.read_section(z))


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


def stream_upsampled(vol: Volume, factor: int, runs: list[RepairRun], engine: Any, sink: SectionSink,
                     progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None) -> None:
    """Produce every output section in z order and hand it to ``sink(z_out, section, label)``.

    ``label`` is 0 for an original section, the defect kind's label (see ``KIND_LABELS``) for a repaired one,
    and ``INTERPOLATED_LABEL`` for a section synthesized between two originals.
    ``progress(done, total)`` counts section pairs.
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
    for z, section in repaired_sections(vol, runs, engine, tile_progress):
        if previous is not None:
            for j, image in enumerate(interpolate_pair(previous, section, ts, engine, tile_progress), start=1):
                sink(factor * (z - 1) + j, image, INTERPOLATED_LABEL)
            if progress is not None:
                progress(z, pairs)
        sink(factor * z, section, KIND_LABELS.get(kinds[z], 1) if z in kinds else 0)
        previous = section
