"""Time and peak memory of sff's stage 0 (regional contrast correction) on one section of each given side.

Stage 0 runs once on the whole section (not tiled), so its memory grows with the section's area. Each size
runs in a fresh process so that the peak resident memory (ru_maxrss) belongs to that size alone.

    python benchmarks/bench_fold_stage0.py --sizes 2048 4096 [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time


def run_one(side: int, threads: int) -> None:
    """Stage 0 on a random side x side section with a band across it; prints seconds and peak RSS."""
    import torch

    from emrepair.models import load_model

    torch.set_num_threads(threads)
    model, _ = load_model("sff")
    model.eval()
    section = torch.rand(1, 1, side, side)
    band = torch.zeros_like(section)
    band[..., side // 2:side // 2 + 20, :] = 1.0
    start = time.perf_counter()
    with torch.inference_mode():
        model.section_gain(section, section, section, band)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"| {side}² | {seconds:.2f} | {peak_gb:.2f} |", flush=True)


def main() -> None:
    """Run each size in its own process and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        run_one(args.one, args.threads)
        return
    print("| section | seconds | peak RSS (GB) |\n|---|---|---|", flush=True)
    for side in args.sizes:
        subprocess.run([sys.executable, __file__, "--one", str(side), "--threads", str(args.threads)], check=True)


if __name__ == "__main__":
    main()
