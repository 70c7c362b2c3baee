"""Quality of FIB-SEM gap repair at 40 nm on the gala stacks (unseen by every shipped weights file).

    python benchmarks/bench_fib_gala.py [--models reslice PATH.pt ...] [--threads 2] [--context 2]

Each gala stack (../shared/data/gala_fib_{example,train,test}.h5, taken as ~10 nm isotropic) is kept at every 4th
section around a target; the targets are the held-out sections (z % 5 == 2, ``training.stacks.is_held_out``)
with ``context`` + 1 kept sections on each side. A grid model fills the target row from the kept sections (as fix
does for one missing section); a pair model (flowunet) interpolates at t = 0.5 between the neighbours; linear is the mean of the two neighbours 40 nm away. Printed: PSNR per stack and
pooled (the mean of the per-section PSNRs), and the process CPU seconds each model took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emrepair.engine.metrics import psnr
from emrepair.models import load_model
from emrepair.training.stacks import is_held_out

STACKS = ("gala_fib_example", "gala_fib_train", "gala_fib_test")
STEP = 4  # 40 nm between kept sections of a 10 nm stack


def cases(volume: np.ndarray, context: int) -> list[tuple[int, list[int]]]:
    """(target, kept sections) for every held-out target whose kept sections all lie in the stack."""
    reach = (context + 1) * STEP
    out = []
    for z in range(reach, volume.shape[0] - reach):
        if is_held_out(z):
            out.append((z, [z + k * STEP for k in range(-context - 1, context + 2) if k != 0]))
    return out


def repair(model: torch.nn.Module | None, volume: np.ndarray, target: int, kept: list[int]) -> np.ndarray:
    """The target section from the kept ones: linear (model None) or the grid model's fill."""
    if model is None:
        return 0.5 * (volume[target - STEP] + volume[target + STEP])
    if not hasattr(model, "fill_grid"):  # a pair model: t = 0.5 between the two neighbours
        m = int(getattr(model, "size_multiple", 1))
        h, w = volume.shape[1:]
        pads = ((0, -h % m), (0, -w % m))
        a, b = (torch.from_numpy(np.pad(volume[z], pads, mode="edge"))[None, None] for z in (target - STEP, target + STEP))
        with torch.no_grad():
            return model(a, b, torch.tensor([0.5]))[0, 0, :h, :w].float().numpy()
    rows = [z - kept[0] for z in kept]
    known = torch.from_numpy(volume[kept])[None, None]
    with torch.no_grad():
        out = model.fill_grid(known, rows, rows[-1] + 1)
    return out[0, 0, target - kept[0]].float().numpy()


def main() -> None:
    """Score linear and each model; one line per model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["reslice"])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=2, help="kept sections beyond each neighbour (repair_context)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    volumes = {}
    for name in STACKS:
        with h5py.File(args.data / f"{name}.h5", "r") as f:
            volumes[name] = f["raw"][:].astype(np.float32) / 255.0
    for label in ["linear", *args.models]:
        model = None if label == "linear" else load_model(label, "cpu")[0]
        start, cpu = time.perf_counter(), time.process_time()
        scores: dict[str, list[float]] = {}
        for name, volume in volumes.items():
            for target, kept in cases(volume, args.context):
                scores.setdefault(name, []).append(psnr(repair(model, volume, target, kept), volume[target]))
        pooled = [s for v in scores.values() for s in v]
        per = "  ".join(f"{n.removeprefix('gala_fib_')} {np.mean(v):.2f}" for n, v in scores.items())
        print(f"{Path(label).stem:14s} pooled {np.mean(pooled):.2f} dB ({len(pooled)} sections)  {per}  "
              f"{time.process_time() - cpu:.1f} s CPU, {time.perf_counter() - start:.1f} s wall", flush=True)


if __name__ == "__main__":
    main()
