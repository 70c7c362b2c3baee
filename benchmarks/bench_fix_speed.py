"""Wall time of ``emrepair fix`` for one missing 1024 x 1024 section, per model, as a user runs it.

    python benchmarks/bench_fix_speed.py [--models flowunet reslice] [--size 1024] [--threads 2] [--tile-size N]

The stack is FIB-SEM at 40 nm: every fourth section of neuroproof_medulla_train2 (10 nm isotropic), each
section mirrored out to ``size`` x ``size`` pixels, 13 sections, voxel size (40, 10, 10) nm; section 6 is
blanked and repaired with ``--sections 6`` (no detection, no fold model). A model may be a checkpoint path.
Printed: wall and process CPU seconds for the whole run (model loading and output writing included; CPU time
counts every thread, so on a shared machine it is the steadier figure) and the PSNR of the repaired section against the original.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emrepair.engine.metrics import psnr
from emrepair.io import open_volume
from emrepair.pipelines.fix import FixOptions, run_fix

STACK = "neuroproof_medulla_train2.h5"
DEPTH, MISSING, DECIMATE = 13, 6, 4


def write_stack(data: Path, size: int, path: Path) -> np.ndarray:
    """The test stack (see the module docstring) written to ``path`` as HDF5; returns the truth."""
    with open_volume(str(data / STACK)) as vol:
        sections = [vol.read_section(z * DECIMATE) for z in range(DEPTH)]
    reps = [(0, max(0, size - s)) for s in sections[0].shape]
    truth = np.stack([np.pad(s, reps, mode="symmetric")[:size, :size] for s in sections])
    broken = truth.copy()
    broken[MISSING] = 0
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=broken, chunks=(1, size, size)).attrs["resolution"] = [40.0, 10.0, 10.0]
    return truth


def main() -> None:
    """Time each model and print one line per model."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["linear", "flow", "flowunet", "reslice"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile-size", type=int, default=None, help="fix's --tile-size (default: the model's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "stack.h5"
        truth = write_stack(args.data, args.size, src)
        print(f"{STACK}: {DEPTH} sections at 40 nm, {args.size}^2, section {MISSING} missing; "
              f"{args.threads} threads, {args.device}")
        for model in args.models:
            out = Path(tmp) / f"{model}.zarr"
            options = FixOptions(model=model, sections=[MISSING], fold_model="none", device=args.device,
                                 tile_size=args.tile_size)
            start, cpu = time.perf_counter(), time.process_time()
            run_fix(str(src), str(out), options)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            with open_volume(str(out)) as vol:
                fixed = vol.read_section(MISSING)
            score = psnr(fixed.astype(np.float32) / 255, truth[MISSING].astype(np.float32) / 255)
            print(f"{Path(model).stem:14s} {seconds:7.1f} s wall {cpu_seconds:7.1f} s CPU   PSNR {score:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
