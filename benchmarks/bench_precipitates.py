"""Benchmark of staining precipitates and regional contrast changes on held-out real sections (z % 5 == 2).

The damage comes from emrepair.simulate.damage, whose shapes and appearance are drawn independently of the
detector's rules. Each case is a three-section stack (the damaged held-out section between its real neighbours).

    python benchmarks/bench_precipitates.py detect [--data ../shared/data] [--seed 0] [--per-stack 6]
    python benchmarks/bench_precipitates.py clean  [--data ../shared/data]
    python benchmarks/bench_precipitates.py repair [--data ../shared/data] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from emrepair.detection import KIND_LABELS, detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.io import ArrayVolume
from emrepair.simulate.damage import simulate_contrast, simulate_precipitates

STACKS = ("isbi2012_train.h5", "vnc_stack1.h5", "cremi_train_crop.h5", "sbem_cdeep3m_val_v2.h5",
          "neuroproof_medulla_train2.h5", "gala_fib_test.h5")


def held_out(data: Path, per_stack: int):
    """(stack, z, three-section stack) for held-out interior sections z % 5 == 2, at most ``per_stack`` each."""
    for name in STACKS:
        with h5py.File(data / name, "r") as f:
            raw = f["raw"]
            zs = [z for z in range(1, raw.shape[0] - 1) if z % 5 == 2]
            step = max(1, len(zs) // per_stack)
            for z in zs[::step][:per_stack]:
                yield name, z, raw[z - 1: z + 2]


def _detect(stack: np.ndarray):
    return detect_volume(ArrayVolume(stack), damage=DamageConfig())


def run_detect(data: Path, seed: int, per_stack: int) -> None:
    """Recall per kind (precipitates: per blob hit, per section flagged; contrast: region IoU >= 0.5), and the
    kinds reported on the damaged sections besides the simulated one."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = defaultdict(list)
    other: dict[str, int] = defaultdict(int)
    for name, z, stack in held_out(data, per_stack):
        for kind in ("precipitate", "contrast"):
            damaged = stack.copy()
            result = (simulate_precipitates if kind == "precipitate" else simulate_contrast)(stack[1], rng)
            damaged[1] = result.image
            report = _detect(damaged)
            found = report.mask(1) == KIND_LABELS[kind]
            kinds = {d.kind for d in report.defects_at(1) + report.marks_at(1)}
            for k in kinds - {kind}:
                other[f"{kind}->{k}"] += 1
            for n in (0, 2):
                other["flags on neighbours"] += len(report.defects_at(n) + report.marks_at(n))
            if kind == "precipitate":
                hits = [bool((found & part).sum() >= 0.5 * part.sum()) for part in result.parts]
                big = [h for h, part in zip(hits, result.parts) if part.sum() >= 400]
                rows[kind].append((name, kind in kinds, hits, big))
            else:
                inter, union = (found & result.mask).sum(), (found | result.mask).sum()
                iou = float(inter / max(union, 1))
                rows[kind].append((name, kind in kinds, iou, result.mode, round(float(result.mask.mean()), 3)))
    print(f"seed {seed}, {per_stack} held-out sections per stack")
    p = rows["precipitate"]
    blobs = [h for r in p for h in r[2]]
    big = [h for r in p for h in r[3]]
    print(f"precipitates: sections flagged {100 * np.mean([r[1] for r in p]):.1f} % of {len(p)}; blobs found "
          f"{100 * np.mean(blobs):.1f} % of {len(blobs)}; blobs >= 400 px {100 * np.mean(big):.1f} % of {len(big)}")
    by_stack: dict[str, list] = defaultdict(list)
    for r in p:
        by_stack[r[0]].append(r[1])
    print("  flagged by stack: " + ", ".join(f"{k} {100 * np.mean(v):.0f} %" for k, v in by_stack.items()))
    c = rows["contrast"]
    print(f"contrast: flagged {100 * np.mean([r[1] for r in c]):.1f} %, found (IoU >= 0.5) "
          f"{100 * np.mean([r[2] >= 0.5 for r in c]):.1f} % of {len(c)}, mean IoU {np.mean([r[2] for r in c]):.2f}")
    for mode in sorted({r[3] for r in c}):
        group = [r for r in c if r[3] == mode]
        print(f"  {mode:>8}: n={len(group):2d} found {100 * np.mean([r[2] >= 0.5 for r in group]):5.1f} %")
    by_stack = defaultdict(list)
    for r in c:
        by_stack[r[0]].append(r[2] >= 0.5)
    print("  found by stack: " + ", ".join(f"{k} {100 * np.mean(v):.0f} %" for k, v in by_stack.items()))
    print(f"other kinds on the damaged sections / flags on their untouched neighbours: {dict(other)}")


def run_clean(data: Path) -> None:
    """Precipitate and contrast flags on every section of every untouched stack."""
    total = flagged = 0
    for path in sorted(data.glob("*.h5")):
        with h5py.File(path, "r") as f:
            raw = f["raw"][:]
        report = _detect(raw)
        bad = [(d.z, d.kind, d.fraction) for d in report.marks]
        total += raw.shape[0]
        flagged += len(bad)
        print(f"{path.name}: {raw.shape[0]} sections, flags {bad}")
    print(f"precipitate/contrast flags: {flagged} of {total} sections")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("detect", "clean", "repair"))
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-stack", type=int, default=6)
    args = parser.parse_args()
    if args.what == "detect":
        run_detect(args.data, args.seed, args.per_stack)
    elif args.what == "clean":
        run_clean(args.data)
    else:
        from bench_damage_repair import run_repair

        run_repair(args.data, args.seed)


if __name__ == "__main__":
    main()
