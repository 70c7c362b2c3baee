"""Lay out ``.gpu/`` for benchmarks/gpu_session.sh: the wheels the GPU image lacks and the training stacks.

    python benchmarks/gpu_stage.py [--data ../shared/data] [--budget-mb 30]

The device tool sends the working tree and the paths named in ``carry`` (64 MiB in all), not ``../shared``.
This writes, in the ignored folder ``.gpu/``:

* ``whl/``: wheels for CPython 3.12 on manylinux x86-64 of the packages emrepair needs that the GPU image does
  not ship (zarr and what it pulls in), fetched with ``pip download`` (PyPI only, at staging time, never on the
  device);
* ``data/``: every serial-section stack of ``--data`` (ssTEM, SBEM, CREMI) and NeuroProof 1 (FIB-SEM), each
  re-saved as gzip-9 HDF5 with its attributes; stacks too large for ``--budget-mb`` are cropped in y and x
  around their centre (the crop is written to the stack's ``cropped_from`` attribute). Held-out sections stay
  held out: ``emrepair train`` holds out every fifth section of each stack by its own z, which a crop in y/x
  does not move, and sbem_cdeep3m_val_v2 is passed with ``--val``.

Then run ``device run`` with ``carry: [".gpu"]`` and ``bash benchmarks/gpu_session.sh``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".gpu"
WHEELS = ("zarr==3.1.6", "numcodecs==0.16.6", "donfig==0.8.1.post1", "google-crc32c==1.9.0")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Training stacks in order of priority; the crop side applies when the whole set would exceed the budget.
# sbem_cdeep3m_train_v1 is left out: it is the same volume as train_v2 (z020-029 are the same sections), and the
# 64 MiB carry limit leaves no room for it. NeuroProof 1 keeps its first FIB_SECTIONS sections.
STACKS = ("isbi2012_train.h5", "cremi_train_crop.h5", "sbem_cdeep3m_val_v2.h5", "sbem_cdeep3m_train_v2.h5",
          "vnc_stack1.h5", "neuroproof_medulla_train1.h5")
FIB_SECTIONS = 160


def fetch_wheels(folder: Path) -> None:
    """Download the wheels named in WHEELS for the GPU image's Python into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(folder), "-q"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + list(WHEELS), check=True)


def save_stack(src: Path, dst: Path, side: int | None, depth: int | None = None) -> int:
    """Copy ``src``'s ``raw`` (its first ``depth`` sections, cropped to ``side``² around the centre when
    smaller) to ``dst``; returns the bytes written."""
    with h5py.File(src, "r") as f:
        raw = f["raw"]
        attrs = dict(raw.attrs)
        z, y, x = raw.shape
        side_y, side_x = min(y, side or y), min(x, side or x)
        y0, x0 = (y - side_y) // 2, (x - side_x) // 2
        data = raw[:min(z, depth or z), y0:y0 + side_y, x0:x0 + side_x]
        if data.shape != raw.shape:
            attrs["cropped_from"] = np.array([z, y, x])
    with h5py.File(dst, "w") as f:
        ds = f.create_dataset("raw", data=data, compression="gzip", compression_opts=9, shuffle=True,
                              chunks=(1,) + data.shape[1:])
        for key, value in attrs.items():
            ds.attrs[key] = value
    return dst.stat().st_size


def stage_data(data: Path, folder: Path, budget: int) -> list[tuple[str, int]]:
    """Write the stacks into ``folder`` within ``budget`` bytes, cropping large ones; returns (name, bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, int]] = []
    for side in (None, 768, 640, 512):
        for old in folder.glob("*.h5"):
            old.unlink()
        written = [(name, save_stack(data / name, folder / name, side,
                                     FIB_SECTIONS if name.startswith("neuroproof") else None))
                   for name in STACKS if (data / name).is_file()]
        if sum(size for _, size in written) <= budget:
            return written
    return written


def main(argv: list[str] | None = None) -> None:
    """Fetch the wheels and stage the data; prints what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--budget-mb", type=float, default=30.0)
    parser.add_argument("--no-wheels", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_wheels:
        fetch_wheels(STAGE / "whl")
    written = stage_data(args.data, STAGE / "data", int(args.budget_mb * 2**20))
    for name, size in written:
        print(f"{name}: {size / 2**20:.1f} MiB")
    total = sum(p.stat().st_size for p in STAGE.rglob("*") if p.is_file())
    print(f".gpu/: {total / 2**20:.1f} MiB in all")


if __name__ == "__main__":
    main()
