"""Repair of simulated staining precipitates and contrast regions in held-out real sections (z % 5 == 2), with
emrepair's own detection: pixels beyond the seam kept, and the damaged pixels' error before and after.

The region is filled (precipitates) or corrected (contrast) by the BlockWriter of a fix run, with the mean of the
two neighbours as the synthesized section (the ``linear`` model). Run through bench_precipitates.py repair.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from bench_precipitates import held_out

from emrepair.detection import detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.distributed.blocks import Block
from emrepair.distributed.region_repair import SEAM_PX
from emrepair.distributed.repair import BlockWriter, read_window
from emrepair.io import ArrayVolume
from emrepair.distributed.plan import RepairRun
from emrepair.simulate.damage import simulate_contrast, simulate_precipitates


class _Mean:
    def __call__(self, job):
        a = read_window(job.vol, job.run.left, job.ys, job.xs).astype(np.float32)
        b = read_window(job.vol, job.run.right, job.ys, job.xs).astype(np.float32)
        return [np.rint(0.5 * (a + b)).astype(job.vol.dtype) for _ in job.zs]


class _Memory:
    def __init__(self, shape):
        self.data = np.zeros(shape, np.uint8)

    def write_region(self, zs, ys, xs, values):
        self.data[zs, ys, xs] = values


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(np.mean((a[mask].astype(np.float64) - b[mask]) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-9))


def run_repair(data: Path, seed: int, per_stack: int = 4) -> None:
    """Per kind: sections detected, kept beyond the seam, PSNR on the damaged pixels before and after."""
    rng = np.random.default_rng(seed)
    results: dict[str, list] = {"precipitate": [], "contrast": []}
    for name, z, stack in held_out(data, per_stack):
        for kind in ("precipitate", "contrast"):
            damaged = stack.copy()
            sim = (simulate_precipitates if kind == "precipitate" else simulate_contrast)(stack[1], rng)
            damaged[1] = sim.image
            report = detect_volume(ArrayVolume(damaged), damage=DamageConfig())
            defect = next((d for d in report.marks_at(1) if d.kind == kind), None)
            if defect is None:
                continue
            run = RepairRun(1, 1, 0, 2, {1: kind}, {1: {"region": defect.region.to_dict()}})
            out = _Memory(damaged.shape)
            BlockWriter(ArrayVolume(damaged), out, None, {"default": _Mean()}, chunk_z=3,
                        repair_precipitates=True).write(Block(0, 3, (run,)))
            region = defect.region.mask()
            far = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) >= SEAM_PX
            kept = bool(np.array_equal(out.data[1][far], damaged[1][far]))
            truth = sim.mask if kind == "contrast" else np.any(sim.parts, axis=0)
            hit = truth & region
            mean = np.rint(0.5 * (stack[0].astype(np.float32) + stack[2])).astype(np.uint8)
            results[kind].append((kept, _psnr(damaged[1], stack[1], hit), _psnr(out.data[1], stack[1], hit),
                                  _psnr(mean, stack[1], hit)))
    for kind, rows in results.items():
        if not rows:
            print(f"{kind}: none detected")
            continue
        arr = np.array([r[1:] for r in rows])
        print(f"{kind}: {len(rows)} detected and repaired; beyond the seam bit-identical in "
              f"{sum(r[0] for r in rows)} of {len(rows)}; PSNR on the damaged pixels found: as damaged "
              f"{arr[:, 0].mean():.2f} dB, repaired {arr[:, 1].mean():.2f} dB, neighbours' mean {arr[:, 2].mean():.2f} dB")
