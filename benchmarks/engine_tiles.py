"""Measure what tiling costs: the same section pair run as one tile and as overlapping tiles.

Run as ``python benchmarks/engine_tiles.py --size 1024 --model ssan`` (random weights are fine:
speed does not depend on them). Prints one line per configuration; nothing else here prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emrepair.engine.config import EngineConfig
from emrepair.engine.interpolator import TiledInterpolator


def synthetic_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two smooth, textured float32 sections in [0, 1] of size x size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(x / 13.0) * np.cos(y / 17.0)
    a = np.clip(base + 0.1 * rng.standard_normal((size, size)), 0, 1).astype(np.float32)
    b = np.clip(np.roll(base, 3, axis=1) + 0.1 * rng.standard_normal((size, size)), 0, 1).astype(np.float32)
    return a, b


def time_run(engine: TiledInterpolator, a: np.ndarray, b: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """Best wall time of ``repeats`` interpolations at t = 0.5, and the last output."""
    best, out = float("inf"), a
    for _ in range(repeats):
        start = time.perf_counter()
        out = engine.interpolate(a, b, [0.5])[0]
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> None:
    """Time one-tile vs tiled runs for each tile size and blend mode given on the command line."""
    from emrepair.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--model", default="ssan")
    parser.add_argument("--tiles", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--blends", nargs="+", default=["gaussian", "hann", "crop"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model, _meta = load_model(args.model, device="cpu", allow_random=True)
    a, b = synthetic_pair(args.size)
    whole = TiledInterpolator(model, EngineConfig(tile_size=args.size, batch_size=1, device=args.device))
    base_s, reference = time_run(whole, a, b, args.repeats)
    print(f"model={args.model} size={args.size} device={whole.device} threads={torch.get_num_threads()} "
          f"halo={whole.halo} size_multiple={whole.size_multiple}")
    print(f"one tile: {base_s:.2f} s")
    for tile in args.tiles:
        for blend in args.blends:
            config = EngineConfig(tile_size=tile, blend=blend, batch_size=args.batch_size, device=args.device)
            engine = TiledInterpolator(model, config)
            seconds, out = time_run(engine, a, b, args.repeats)
            tiles = len(engine.plan(a.shape))
            diff = float(np.abs(out - reference).max())
            print(f"tile {tile} overlap {engine.overlap_for(tile)} {blend:8s} tiles {tiles:3d}: {seconds:.2f} s "
                  f"({100 * (seconds / base_s - 1):+.0f}%), max |tiled - one tile| = {diff:.2e}")


if __name__ == "__main__":
    main()
