"""What reusing a pair's flow saves: a run of 3 missing sections through the engine, flow cache off and on.

    python benchmarks/bench_flow_reuse.py [--model flowunet] [--size 1024] [--tile-size 512] [--threads 2]

Prints the best of ``--repeats`` wall times of ``TiledInterpolator.interpolate(a, b, [1/4, 1/2, 3/4])`` on a
synthetic pair with ``emrepair.models.flow``'s pair cache disabled (every (tile, t) item estimates its own DIS
flows, as before 2026-12-02) and enabled, and checks that both give the same pixels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_tiles import synthetic_pair

from emrepair.engine.config import EngineConfig  # noqa: E402
from emrepair.engine.interpolator import TiledInterpolator  # noqa: E402
from emrepair.models import flow, load_model  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Time the run with the cache off and on; print both and whether the outputs agree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flowunet")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    engine = TiledInterpolator(load_model(args.model, allow_random=True)[0],
                               EngineConfig(tile_size=args.tile_size, device="cpu"))
    a, b = synthetic_pair(args.size)
    outputs = {}
    default_size = flow._FLOW_CACHE_SIZE
    for size, label in ((0, "cache off"), (default_size, "cache on")):
        flow._FLOW_CACHE_SIZE = size
        flow._FLOW_CACHE.clear()
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs[label] = engine.interpolate(a, b, [0.25, 0.5, 0.75])
            best = min(best, time.perf_counter() - start)
        print(f"{args.model} run of 3, {args.size}^2 in {args.tile_size}^2 tiles, {label}: {best:.2f} s")
    flow._FLOW_CACHE_SIZE = default_size
    same = all(np.array_equal(x, y) for x, y in zip(outputs["cache off"], outputs["cache on"]))
    print(f"same pixels: {same}")


if __name__ == "__main__":
    main()
