"""Peak memory (VmHWM) of `emrepair fix --model linear` on a deep volume and on huge sections.

    PYTHONPATH=. python benchmarks/bench_memory.py --case deep    # 3000 x 1024 x 1024 uint8 Zarr (3 GB)
    PYTHONPATH=. python benchmarks/bench_memory.py --case huge    # 3 x 16384 x 16384 uint8 Zarr (768 MB)

The volume is generated on disk (compressible texture, chunks of one section in 1024² tiles), then
``python -m emrepair fix`` runs in a child process whose peak resident memory is read from /proc/<pid>/status
just before it exits. Needs ~1 GB of free disk per case (the data compress well).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

CASES = {"deep": (3000, 1024, 1024), "huge": (3, 16384, 16384)}
LIMITS_GB = {"deep": 1.5, "huge": 2.0}

# Runs emrepair in-process and prints VmHWM at exit, so the measurement covers the whole command.
CHILD = """
import atexit, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            print("VMHWM_KB", int(line.split()[1]), file=sys.stderr, flush=True)
atexit.register(report)
from emrepair.cli.app import app
sys.argv = ["emrepair"] + sys.argv[1:]
app()
"""


def make_volume(path: Path, shape: tuple[int, int, int]) -> None:
    """Write a compressible uint8 texture volume, section by section (never the whole volume in memory)."""
    arr = zarr.open_array(str(path), mode="w", shape=shape, chunks=(1, 1024, 1024), dtype="uint8")
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]].astype(np.float32)
    base = (np.sin(xx / 17) + np.cos(yy / 23)).astype(np.float32)
    for z in range(shape[0]):
        arr[z] = (120 + 50 * np.sin(base + 0.01 * z)).astype(np.uint8)


def measure(src: Path, out: Path, sections: str) -> tuple[float, float]:
    """(peak RSS in GB, seconds) of one fix run."""
    cmd = [sys.executable, "-c", CHILD, "fix", str(src), "-o", str(out), "--sections", sections,
           "--model", "linear", "--device", "cpu", "--no-progress"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"fix failed ({proc.returncode}): {proc.stderr[-2000:]}")
    peak_kb = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("VMHWM_KB")][-1]
    return peak_kb / 2**20, seconds


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="deep")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the volume (default: a temp dir)")
    args = parser.parse_args()
    shape = CASES[args.case]
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        src = work / "in.zarr"
        started = time.perf_counter()
        make_volume(src, shape)
        print(f"generated {shape} in {time.perf_counter() - started:.0f} s")
        sections = "1" if args.case == "huge" else "10,500-502,1500,2999"
        peak, seconds = measure(src, work / "out.zarr", sections)
        verdict = "ok" if peak < LIMITS_GB[args.case] else "OVER"
        print(f"{args.case} {shape}: peak RSS {peak:.2f} GB (limit {LIMITS_GB[args.case]} GB, {verdict}), "
              f"{seconds:.0f} s")
        return 0 if verdict == "ok" else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
