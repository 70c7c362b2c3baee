"""Benchmark of partly lost sections on real stacks: detection recall, clean flags, untouched pixels, region repair.

The damage comes from a generator written here, independently of emrepair.simulate (so recall is not the detector
agreeing with its own simulation): five fills (black, white, grey, noise, dark film with a little noise) in three
shapes (torn from a border along a random-walk edge, a polygonal hole inside, dropout stripes of full rows or
columns), at 5-60 % of the section, in sections no shipped weights saw.

    python benchmarks/bench_partial.py detect [--data ../shared/data] [--seed 0]
    python benchmarks/bench_partial.py clean  [--data ../shared/data]
    python benchmarks/bench_partial.py repair [--data ../shared/data] [--seed 0] [--model flowunet]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import cv2
import h5py
import numpy as np

from emrepair.detection import KIND_LABELS, detect_volume
from emrepair.io import ArrayVolume

FILLS = ("black", "white", "grey", "noise", "dark-film")
SHAPES = ("torn", "hole", "stripes")
FRACTIONS = (0.05, 0.1, 0.2, 0.4, 0.6)
SEAM = 16
# held-out sections: z % 5 == 2 of the stacks the weights trained on; stacks no weights saw at a stride
HELD_OUT = {"isbi2012_train.h5": range(2, 30, 5), "vnc_stack1.h5": range(2, 20, 5),
            "cremi_train_crop.h5": range(1, 32, 4), "sbem_cdeep3m_val_v2.h5": range(10),
            "neuroproof_medulla_train2.h5": range(5, 250, 25), "gala_fib_test.h5": range(4, 50, 10)}


def _torn(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Everything beyond a random-walk edge entering from one border."""
    h, w = shape
    side = int(rng.integers(4))
    n = w if side in (0, 1) else h
    walk = np.cumsum(rng.normal(0, 1.5, n)) + 6 * np.sin(np.arange(n) / rng.uniform(8, 40))
    walk -= walk.mean()
    depth_of = np.arange(h if side in (0, 1) else w)[:, None].astype(float)
    lo, hi = 0.0, float(depth_of.max() + np.abs(walk).max() + 1)
    for _ in range(30):  # bisect the edge's depth until the area is right
        mid = 0.5 * (lo + hi)
        mask = depth_of < mid + walk[None, :]
        lo, hi = (mid, hi) if mask.mean() < fraction else (lo, mid)
    mask = depth_of < 0.5 * (lo + hi) + walk[None, :]
    if side in (2, 3):
        mask = mask.T
    return mask[::-1] if side in (1, 3) else mask


def _hole(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A jagged polygon inside the section."""
    h, w = shape
    k = int(rng.integers(7, 15))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = rng.uniform(0.6, 1.0, k)
    centre = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h])
    scale = np.sqrt(fraction * h * w / (np.pi * np.mean(radii ** 2)))
    for _ in range(12):
        pts = centre + scale * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
        got = mask.mean()
        if got <= 0 or abs(got - fraction) < 0.005:
            break
        scale *= np.sqrt(fraction / got)
    return mask.astype(bool)


def _stripes(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """One to three bands of full rows (or columns), together about ``fraction`` of the section."""
    h, w = shape
    vertical = rng.random() < 0.5
    n = h if not vertical else w
    count = int(rng.integers(1, 4))
    widths = np.maximum(2, np.round(rng.dirichlet(np.ones(count)) * fraction * n)).astype(int)
    mask1d = np.zeros(n, bool)
    for width in widths:
        start = int(rng.integers(0, max(1, n - width)))
        mask1d[start:start + width] = True
    return np.broadcast_to(mask1d[None, :] if vertical else mask1d[:, None], shape).copy()


def damage(section: np.ndarray, fill: str, shape: str, fraction: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 section with ``fraction`` of it lost to ``fill`` in ``shape``; and the lost mask."""
    mask = {"torn": _torn, "hole": _hole, "stripes": _stripes}[shape](section.shape, fraction, rng)
    out = section.copy()
    n = int(mask.sum())
    if fill == "black":
        values = np.zeros(n)
    elif fill == "white":
        values = np.full(n, 255.0)
    elif fill == "grey":
        values = np.full(n, rng.uniform(60, 200))
    elif fill == "noise":
        spread = rng.uniform(0.8, 1.3) * float(section.std())
        values = rng.normal(float(section.mean()) + rng.uniform(-10, 10), spread, n)
    else:  # an empty film: nearly black, a little detector noise
        values = rng.uniform(0, rng.uniform(6, 16), n)
    out[mask] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out, mask


def _sections(data: Path):
    """(stack name, z, section) of every held-out section."""
    for name, zs in HELD_OUT.items():
        with h5py.File(data / name, "r") as f:
            raw = f["raw"]
            for z in zs:
                yield name, z, raw[z]


def run_detect_bench(data: Path, seed: int, fractions: tuple[float, ...] = FRACTIONS, all_kinds: bool = False) -> None:
    """Recall per fill, shape and area fraction; found = reported partial (or missing above 90 %) with IoU >= 0.5.

    Each section is damaged once per fraction, fill and shape cycled; with ``all_kinds``, once per fraction, fill
    and shape (15 cases a fraction)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    combos = [(f, s) for f in FILLS for s in SHAPES]
    i = 0
    for name, z, section in _sections(data):
        for fraction, (fill, shape) in ([(f, c) for f in fractions for c in combos] if all_kinds else
                                        [(f, combos[(i + k) % len(combos)]) for k, f in enumerate(fractions)]):
            i += 1
            damaged, lost = damage(section, fill, shape, fraction, rng)
            report = detect_volume(ArrayVolume(damaged[None]))
            kinds = {d.kind for d in report.defects}
            found_mask = report.mask(0) == KIND_LABELS["partial"] if "partial" in kinds else report.mask(0) > 0
            overlap = float((found_mask & lost).sum() / max(1, (found_mask | lost).sum()))
            flagged = "partial" in kinds or "missing" in kinds
            covered = float(found_mask[lost].mean()) if flagged else 0.0
            rows.append((fill, shape, fraction, flagged, flagged and overlap >= 0.5, overlap, covered, name, z,
                         sorted(kinds)))
    print(f"{len(rows)} damaged held-out sections (seed {seed})")
    for label, key in (("fraction", 2), ("fill", 0), ("shape", 1)):
        groups: dict = defaultdict(list)
        for row in rows:
            groups[row[key]].append(row)
        print(f"\nby {label}: flagged / found (IoU >= 0.5) / mean IoU / lost pixels inside the region (mean, min)")
        for value, group in groups.items():
            flagged = np.mean([r[3] for r in group])
            found = np.mean([r[4] for r in group])
            print(f"  {value!s:>9}: n={len(group):3d}  {100 * flagged:5.1f} %  {100 * found:5.1f} %  "
                  f"{np.mean([r[5] for r in group]):.2f}  {np.mean([r[6] for r in group]):.3f} "
                  f"{np.min([r[6] for r in group]):.3f}")
    print("\nfound (IoU >= 0.5) per fraction and kind (fill: black, white = saturated, grey = flat, noise, dark film;"
          " shape: torn edge, hole, stripes)")
    for fraction in fractions:
        cells = []
        for key, values in ((0, FILLS), (1, SHAPES)):
            for value in values:
                group = [r for r in rows if r[2] == fraction and r[key] == value]
                cells.append(f"{value} {sum(r[4] for r in group)}/{len(group)}")
        print(f"  {fraction:.2f}: " + ", ".join(cells))
    for fraction in fractions:
        misses = [(r[0], r[1], r[7], r[8], round(r[5], 2), r[9]) for r in rows if r[2] == fraction and not r[4]]
        if misses:
            print(f"missed at {fraction:.2f}: {misses}")


def run_clean_bench(data: Path) -> None:
    """Partial or missing flags on every section of every untouched stack."""
    total = flagged = 0
    for path in sorted(data.glob("*.h5")):
        with h5py.File(path, "r") as f:
            raw = f["raw"][:]
        report = detect_volume(ArrayVolume(raw))
        bad = [(d.z, d.kind) for d in report.defects if d.kind in ("partial", "missing")]
        largest = max(s.get("partial_fraction", 0.0) for s in report.sections)
        total += raw.shape[0]
        flagged += len(bad)
        print(f"{path.name}: {raw.shape[0]} sections, partial/missing flags {bad}, largest lost fraction {largest}")
    print(f"clean flags: {flagged} of {total} sections")


def _region_scores(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and mean SSIM over the pixels of ``mask``."""
    from skimage.metrics import structural_similarity

    a, b = image.astype(np.float64) / 255, truth.astype(np.float64) / 255
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    _, ssim_map = structural_similarity(a, b, data_range=1.0, full=True)
    return 10 * np.log10(1 / max(mse, 1e-12)), float(ssim_map[mask].mean())


def run_repair_bench(data: Path, seed: int, model: str, ends: bool = False) -> None:
    """Region repair against whole-section replacement (same model) and linear, on the lost pixels; with
    ``ends``, the first and the last section of each triplet are damaged instead of the middle one."""
    from emrepair.pipelines.fix import FixOptions, run_fix

    rng = np.random.default_rng(seed)
    cases = [("isbi2012_train.h5", z, 1) for z in (7, 12, 17, 22)] + [("vnc_stack1.h5", z, 1) for z in (7, 12, 17)]
    cases += [("cremi_train_crop.h5", z, 1) for z in (5, 13, 21)] + [("sbem_cdeep3m_val_v2.h5", z, 1) for z in (2, 5, 8)]
    cases += [("neuroproof_medulla_train2.h5", z, 4) for z in (100, 150, 200)]  # 40 nm: neighbours 4 apart
    scores: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    kept, total, skipped = 0, 0, []
    names: list[str] = []
    jobs = [(case, at) for case in cases for at in ((0, 2) if ends else (1,))]
    for i, ((name, z, step), at) in enumerate(jobs):
        with h5py.File(data / name, "r") as f:
            stack = f["raw"][[z - step, z, z + step]]
        h, w = stack.shape[1:]
        side = min(h, w, 384)
        stack = np.ascontiguousarray(stack[:, (h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2])
        fill, shape = FILLS[i % len(FILLS)], SHAPES[i % len(SHAPES)]
        fraction = (0.1, 0.3, 0.5)[i % 3]
        truth = stack[at].copy()
        stack[at], lost = damage(truth, fill, shape, fraction, rng)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in.h5"
            with h5py.File(src, "w") as f:
                f["raw"] = stack
                f["raw"].attrs["resolution"] = [40.0, 4.0, 4.0]
            report = detect_volume(ArrayVolume(stack))
            if [(d.z, d.kind) for d in report.defects] != [(at, "partial")]:
                skipped.append((name, z, at, fill, shape, [(d.z, d.kind) for d in report.defects]))
                continue
            region = report.mask(at) == KIND_LABELS["partial"]
            report.save(Path(tmp) / "r.json")
            outputs = {}
            for label, (m, sections) in {"region": (model, None), "whole": (model, [at]),
                                         "linear region": ("linear", None), "linear whole": ("linear", [at])}.items():
                out = Path(tmp) / f"{label.replace(' ', '_')}.h5"
                options = FixOptions(model=m, sections=sections, report_path=None if sections else str(Path(tmp) / "r.json"))
                run_fix(str(src), str(out), options)
                with h5py.File(out, "r") as f:
                    outputs[label] = f["raw"][at]
        far = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) >= SEAM
        total += 1
        kept += int(np.array_equal(outputs["region"][far], stack[at][far]))
        for label, image in outputs.items():
            section_psnr = _region_scores(image, truth, np.ones_like(lost))[0]
            scores[label].append((*_region_scores(image, truth, lost), section_psnr))
        names.append(f"{name} z={z} section {at}")
        line = ", ".join(f"{k} {scores[k][-1][0]:.2f}" for k in outputs)
        print(f"{name} z={z} (section {at} of 3) {fill} {shape} {fraction:.0%}: region PSNR {line}")
    print(f"\n{total} repaired sections ({len(skipped)} skipped: {skipped})")
    print(f"pixels >= {SEAM} px from the region bit-identical: {kept} of {total} sections")
    for label, values in scores.items():
        arr = np.array(values)
        print(f"  {label:>14}: region PSNR {arr[:, 0].mean():.2f} dB, region SSIM {arr[:, 1].mean():.3f}, "
              f"whole-section PSNR {arr[:, 2].mean():.2f} dB")
    for other in ("whole", "linear region"):
        gain = np.array(scores["region"])[:, 0] - np.array(scores[other])[:, 0]
        below = [(names[k], round(float(gain[k]), 4)) for k in np.flatnonzero(gain < 0)]
        print(f"region ({model}) - {other} per section: min {gain.min():+.3f}, mean {gain.mean():+.3f} dB, "
              f"below 0 in {len(below)} of {gain.size}{': ' + str(below) if below else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("detect", "clean", "repair"))
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="flowunet")
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS), help="detect: nominal fractions")
    parser.add_argument("--all-kinds", action="store_true", help="detect: every fill and shape at each fraction")
    parser.add_argument("--ends", action="store_true", help="repair: damage the first and last sections")
    args = parser.parse_args()
    if args.what == "detect":
        run_detect_bench(args.data, args.seed, tuple(args.fractions), args.all_kinds)
    elif args.what == "clean":
        run_clean_bench(args.data)
    else:
        run_repair_bench(args.data, args.seed, args.model, args.ends)


if __name__ == "__main__":
    main()
