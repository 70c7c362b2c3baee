"""Benchmark of repair quality and speed on the real stacks in ../shared/data (a script, not a test).

For every stack: drop interior good sections (single ones, and runs of 2 and 3; FIB-SEM stacks decimated to
40 nm), repair them with every registered model that has weights plus linear and flow (and, with
--random-weights, the untrained ssan/dan for timing), and print PSNR, SSIM and seconds per megapixel.

    python benchmarks/bench_fix.py --max-sections 4
    python benchmarks/bench_fix.py --model weights/ssan.pt --random-weights --json bench.json
    python benchmarks/bench_fix.py --held-out --max-sections 4     # only runs centred on held-out sections

``--held-out``: runs whose middle section is one that ``emrepair train`` holds out (z % 5 == 2), so weights
trained on these stacks are scored on sections they never saw as targets (for runs of 2-3 the other
sections of the run were training targets; neuroproof_medulla_train2 and gala were not trained on at all).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emrepair.models import list_models  # noqa: E402
from emrepair.pipelines.eval import evaluate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SSTEM = ("isbi2012_train.h5", "vnc_stack1.h5")
FIBSEM = ("neuroproof_medulla_train1.h5", "neuroproof_medulla_train2.h5", "gala_fib_example.h5")
FIBSEM_DECIMATE = 4   # 10 nm -> 40 nm serial sections


def models_to_run(extra: list[str], random_weights: bool) -> list[str]:
    """Learned registry models with weights (all of them with --random-weights), then the extra paths."""
    names = [s.name for s in list_models() if s.learned and (s.has_weights() or random_weights)]
    return list(dict.fromkeys([*names, *extra]))


def held_out_runs(path: Path, gap: int, decimate: int, limit: int) -> list[int]:
    """First sections of runs of ``gap`` whose middle section is held out by ``emrepair train`` (z % 5 == 2),
    with their neighbours inside the stack; at most ``limit``, evenly spread."""
    from emrepair.io import open_volume
    from emrepair.training.stacks import is_held_out

    with open_volume(str(path)) as vol:
        depth = vol.shape[0]
    middle = (gap - 1) // 2 * decimate
    firsts = [z - middle for z in range(depth) if is_held_out(z)]
    firsts = [f for f in firsts if f - decimate >= 0 and f + gap * decimate < depth]
    step = max(1, len(firsts) // max(1, limit))
    return firsts[::step][:limit]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a markdown table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the HDF5 stacks")
    parser.add_argument("--stacks", nargs="*", default=[*SSTEM, *FIBSEM], help="file names inside --data")
    parser.add_argument("--gaps", default="1,2,3", help="run lengths to drop, e.g. 1,2,3")
    parser.add_argument("--max-sections", type=int, default=4, help="runs per stack and gap")
    parser.add_argument("--model", action="append", default=[], help="extra model name or checkpoint path")
    parser.add_argument("--random-weights", action="store_true", help="also time untrained ssan/dan")
    parser.add_argument("--held-out", action="store_true", help="runs centred on held-out sections (z % 5 == 2)")
    parser.add_argument("--devices", default=None, help="comma list (default: cpu, and cuda when present)")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)) if not torch.cuda.is_available() else torch.get_num_threads())
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gaps = [int(g) for g in args.gaps.split(",")]
    models = models_to_run(args.model, args.random_weights)
    results: list[dict[str, Any]] = []
    print(f"models: linear, flow, {', '.join(models) or '(no learned model has weights)'}; devices {devices}\n")
    print("| stack | gap | decimate | model | PSNR dB | SSIM | s/MP | device |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.stacks:
        path = args.data / name
        if not path.is_file():
            print(f"skipping {name}: not in {args.data}", file=sys.stderr)
            continue
        decimate = FIBSEM_DECIMATE if name in FIBSEM else 1
        for device in devices:
            for gap in gaps:
                started = time.perf_counter()
                sections = held_out_runs(path, gap, decimate, args.max_sections) if args.held_out else None
                result = evaluate(str(path), models, gap=gap, decimate=decimate, max_sections=args.max_sections,
                                  sections=sections, device=device, allow_random=args.random_weights)
                record = result.to_dict()
                record["wall_seconds"] = round(time.perf_counter() - started, 1)
                results.append(record)
                for model in record["models"]:
                    spm = model["seconds_per_megapixel"]
                    label = model["name"] + (f" ({model['note']})" if model["note"] else "")
                    print(f"| {name} | {gap} | {decimate} | {label} | {model['psnr']:.2f} | {model['ssim']:.4f} | "
                          f"{'-' if spm is None else f'{spm:.3f}'} | {device} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
