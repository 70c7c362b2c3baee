"""Cost of the OME-Zarr pyramid that an .ome.zarr output gets at commit: time to write level 0 section by
section, time of the commit (the coarser levels, made chunk by chunk) and the peak of traced Python memory
during the commit, on a synthetic random volume (worst case for compression) and on real stacks of
../shared/data copied to .ome.zarr (the copy is the level-0 write).

    python benchmarks/bench_ome_pyramid.py [--data ../shared/data] [--size 2048] [--depth 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from emrepair.io import ArrayVolume, create_output, ome, open_volume

REAL = ("vnc_stack1.h5", "sbem_cdeep3m_train_v1.h5")


def measure(name: str, sections: object, info: object, folder: Path, pyramid: bool) -> None:
    """Write ``sections`` (an iterable of (y, x) arrays) to an .ome.zarr and print the timings."""
    ome.PYRAMID_MIN_PX = 256 if pyramid else 10 ** 9
    writer = create_output(folder / f"{name}-{pyramid}.ome.zarr", like=info)
    start = time.perf_counter()
    for z, section in enumerate(sections):  # type: ignore[arg-type]
        writer.write_section(z, section)
    written = time.perf_counter()
    tracemalloc.start()
    writer.commit()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    levels = len(ome.pyramid_shapes(info.shape))  # type: ignore[attr-defined]
    print(f"{name} {info.shape} pyramid={pyramid} ({levels if pyramid else 1} levels): level 0 "  # type: ignore[attr-defined]
          f"{written - start:.1f} s, commit {time.perf_counter() - written:.1f} s, traced peak {peak / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        section = np.random.default_rng(0).integers(0, 255, (args.size, args.size), dtype=np.uint8)
        info = ArrayVolume(np.zeros((args.depth, args.size, args.size), np.uint8)).info
        for pyramid in (False, True):
            measure("random", (section for _ in range(args.depth)), info, folder, pyramid)
        for stack in REAL:
            path = Path(args.data) / stack
            if not path.is_file():
                continue
            with open_volume(path) as vol:
                for pyramid in (False, True):
                    measure(path.stem, (vol.read_section(z) for z in range(vol.shape[0])), vol.info, folder, pyramid)


if __name__ == "__main__":
    main()
