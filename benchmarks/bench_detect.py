"""Benchmark of the defect detector on the real stacks of ../shared/data with injected defects.

Family A (what the detector was tuned on and sff trains on): per stack, every missing kind injected into a
few sections and folds of ``simulate_fold`` (ECCVW line widths 5-50 px, TMI contrast boxes, some curved)
into others, seeded. Family B (measured only, never tuned on): one or two folds of the independent
``simulate_fold_b`` (thin lines, ragged wide bands, faint, broken, edge folds) in every held-out section
(z % 5 == 2, the sections no weights saw). Prints per-kind precision/recall (a tear is a partly lost section),
fold band IoU, flags on the untouched stacks, and detection time against plain section-by-section read
time; the fold detector alone is also run with each section's neighbours passed (the z cue).

    python benchmarks/bench_detect.py [--data ../shared/data] [--seed 0] [--family A B]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from emrepair.detection import DetectConfig, DetectionReport, detect_volume
from emrepair.detection.fold_detect import find_folds, fold_band_mask
from emrepair.detection.section_stats import clean_section, section_stats
from emrepair.io import open_volume
from emrepair.simulate import MISSING_KINDS, FoldParams, simulate_fold, simulate_missing
from emrepair.simulate.fold_b import simulate_fold_b
from emrepair.training.stacks import is_held_out

MISSING_PER_KIND = 2
FOLDS_PER_STACK = 8


def inject(raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[int, str], dict[int, np.ndarray]]:
    """Copy ``raw`` with defects in distinct, non-adjacent sections; return it, {z: kind}, {z: band mask}."""
    depth = raw.shape[0]
    wanted = len(MISSING_KINDS) * MISSING_PER_KIND + FOLDS_PER_STACK
    pool = np.arange(0, depth, 2)
    chosen = rng.choice(pool, size=min(wanted, pool.size), replace=False)
    out, truth, bands = raw.copy(), {}, {}
    kinds = [k for k in MISSING_KINDS for _ in range(MISSING_PER_KIND)] + ["fold"] * FOLDS_PER_STACK
    for z, kind in zip(chosen, kinds[: chosen.size]):
        if kind == "fold":
            fold = simulate_fold(raw[z], rng, FoldParams())
            out[z], bands[int(z)] = fold.image, fold.band_mask
            truth[int(z)] = "fold"
        else:
            out[z] = simulate_missing(raw[z], kind, rng)
            truth[int(z)] = "partial" if kind == "tear" else "missing"  # a tear (55-85 % lost) keeps its tissue
    return out, truth, bands


def inject_b(raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[int, str], dict[int, np.ndarray],
                                                                 dict[int, str]]:
    """Copy ``raw`` with family-B folds in every held-out section; return it, {z: "fold"}, {z: band mask} and
    {z: kind of the section's first fold}."""
    out, truth, bands, kinds = raw.copy(), {}, {}, {}
    for z in range(raw.shape[0]):
        if is_held_out(z):
            fold = simulate_fold_b(raw[z], rng)
            out[z], bands[z], truth[z], kinds[z] = fold.image, fold.band_mask, "fold", fold.folds[0].kind
    return out, truth, bands, kinds


def score(report: DetectionReport, truth: dict[int, str], bands: dict[int, np.ndarray], shape: tuple[int, int],
          counts: dict[str, dict[str, int]], ious: list[float]) -> dict[int, tuple[str | None, str | None]]:
    """Add a report's true/false positives and band IoUs to ``counts``/``ious``; return the errors."""
    kinds: dict[int, list[str]] = {}
    for d in report.defects:
        kinds.setdefault(d.z, []).append(d.kind)
    # a section may be reported with a fold and a partial loss: it counts as the kind it truly has, if reported
    found = {z: (truth[z] if truth.get(z) in ks else ks[0]) for z, ks in kinds.items()}
    for z in sorted(set(truth) | set(found)):
        t, p = truth.get(z), found.get(z)
        if t == p:
            counts[t]["tp"] += 1
        else:
            if p is not None:
                counts[p]["fp"] += 1
            if t is not None:
                counts[t]["fn"] += 1
        if t == "fold" and p == "fold":
            pred = report.mask(z, shape) == 2
            ious.append(float((pred & bands[z]).sum() / max((pred | bands[z]).sum(), 1)))
    return {z: (truth.get(z), found.get(z)) for z in set(truth) | set(found) if truth.get(z) != found.get(z)}


def summary(name: str, counts: dict[str, dict[str, int]], ious: list[float]) -> None:
    """Print precision/recall per kind and the band IoU of one family."""
    for kind, c in counts.items():
        if not any(c.values()):
            continue
        precision = c["tp"] / max(c["tp"] + c["fp"], 1)
        recall = c["tp"] / max(c["tp"] + c["fn"], 1)
        print(f"{name} {kind:8s} precision {precision:.3f}  recall {recall:.3f}  "
              f"(tp {c['tp']}, fp {c['fp']}, fn {c['fn']})")
    if ious:
        print(f"{name} fold band IoU: mean {np.mean(ious):.3f}  min {np.min(ious):.3f}  (n={len(ious)})")


def folds_alone(stack: np.ndarray, truth: dict[int, str], bands: dict[int, np.ndarray],
                counts: dict[str, int], ious: list[float], z_cue: bool = False) -> float:
    """The fold detector by itself (``find_folds`` on every section but those made missing or torn, no missing or
    lost-region logic): add its fold true/false positives and band IoUs; return the seconds it took. With
    ``z_cue``, each section's neighbours (those not made missing or torn) are passed for the z cue."""
    config = DetectConfig()
    seconds = 0.0
    for z in range(stack.shape[0]):
        if truth.get(z) in ("missing", "partial"):
            continue
        values, nonfinite = clean_section(stack[z])
        stats = section_stats(values, nonfinite, config)
        neighbours = None
        if z_cue:
            neighbours = tuple(clean_section(stack[j])[0] if 0 <= j < stack.shape[0]
                               and truth.get(j) not in ("missing", "partial") else None for j in (z - 1, z + 1))
        start = time.perf_counter()
        folds = find_folds(values, stats.black, stats.median, config, neighbours=neighbours)
        seconds += time.perf_counter() - start
        is_fold = truth.get(z) == "fold"
        if folds and is_fold:
            counts["tp"] += 1
            pred = fold_band_mask(folds, values.shape, max(values.shape))
            ious.append(float((pred & bands[z]).sum() / max((pred | bands[z]).sum(), 1)))
        elif folds:
            counts["fp"] += 1
        elif is_fold:
            counts["fn"] += 1
    return seconds


def timed_read(path: Path) -> float:
    """Seconds to read every section once through emrepair.io."""
    with open_volume(path) as vol:
        start = time.perf_counter()
        for z in range(vol.shape[0]):
            vol.read_section(z)
        return time.perf_counter() - start


def timed_detect(path: Path) -> tuple[DetectionReport, float]:
    """The report and the seconds detection took."""
    with open_volume(path) as vol:
        start = time.perf_counter()
        report = detect_volume(vol)
        return report, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", nargs="+", default=["A", "B"], choices=["A", "B"])
    args = parser.parse_args()
    files = sorted(args.data.glob("*.h5"))
    if not files:
        raise SystemExit(f"no .h5 stacks in {args.data}")
    rng = np.random.default_rng(args.seed)
    rng_b = np.random.default_rng(args.seed + 1000)
    counts = {f: {k: {"tp": 0, "fp": 0, "fn": 0} for k in ("missing", "partial", "fold")} for f in ("A", "B")}
    ious: dict[str, list[float]] = {"A": [], "B": []}
    kind_hits: dict[str, list[int]] = {}
    alone = {f: {"tp": 0, "fp": 0, "fn": 0} for f in ("clean", "A", "B", "clean+z", "A+z", "B+z")}
    alone_ious: dict[str, list[float]] = {"A": [], "B": [], "A+z": [], "B+z": []}
    alone_s = alone_z_s = 0.0
    clean_flags = 0
    read_total = detect_total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            read_s = timed_read(path)
            clean, detect_s = timed_detect(path)
            read_total += read_s
            detect_total += detect_s
            clean_flags += len(clean.defects)
            with h5py.File(path, "r") as f:
                raw = f["raw"][:]
            folds_s = folds_alone(raw, {}, {}, alone["clean"], [])
            alone_s += folds_s
            alone_z_s += folds_alone(raw, {}, {}, alone["clean+z"], [], z_cue=True)
            line = (f"{path.name:30s} {raw.shape!s:16s} clean flags {len(clean.defects)}  "
                    f"read {read_s * 1e3:7.1f} ms  "
                    f"detect {detect_s * 1e3:7.1f} ms ({detect_s / read_s:4.1f}x)  find_folds {folds_s / read_s:4.1f}x")
            for family in args.family:
                if family == "A":
                    damaged, truth, bands = inject(raw, rng)
                    kinds = {}
                else:
                    damaged, truth, bands, kinds = inject_b(raw, rng_b)
                injected = Path(tmp) / f"{family}_{path.name}"
                with h5py.File(injected, "w") as f:
                    f.create_dataset("raw", data=damaged, chunks=True)
                report, _ = timed_detect(injected)
                errors = score(report, truth, bands, raw.shape[1:], counts[family], ious[family])
                folds_alone(damaged, truth, bands, alone[family], alone_ious[family])
                folds_alone(damaged, truth, bands, alone[family + "+z"], alone_ious[family + "+z"], z_cue=True)
                for z, kind in kinds.items():
                    kind_hits.setdefault(kind, []).append(int(z not in errors))
                line += f"  {family} errors (truth, found): {errors or 'none'}"
            print(line)
    for family in args.family:
        summary(family, counts[family], ious[family])
    if kind_hits:
        print("B fold recall by kind of the first fold: "
              + ", ".join(f"{k} {np.mean(v):.3f} (n={len(v)})" for k, v in sorted(kind_hits.items())))
    print(f"flags on untouched stacks: {clean_flags}")
    print("fold detector alone (find_folds on every section, without the missing and lost-region logic):")
    for family in [f + z for f in args.family for z in ("", "+z")]:
        c = alone[family]
        print(f"  {family} fold precision {c['tp'] / max(c['tp'] + c['fp'], 1):.3f}  "
              f"recall {c['tp'] / max(c['tp'] + c['fn'], 1):.3f}  (tp {c['tp']}, fp {c['fp']}, fn {c['fn']})  "
              f"band IoU mean {np.mean(alone_ious[family] or [0]):.3f}  min {np.min(alone_ious[family] or [0]):.3f}")
    print(f"  flags on untouched stacks: {alone['clean']['fp']}  find_folds time {alone_s:.2f} s "
          f"({alone_s / read_total:.2f}x read)")
    print(f"  with the z cue (neighbours passed): flags on untouched stacks {alone['clean+z']['fp']}  "
          f"find_folds time {alone_z_s:.2f} s ({alone_z_s / read_total:.2f}x read)")
    print(f"time: read {read_total:.2f} s, detect {detect_total:.2f} s, ratio {detect_total / read_total:.2f}x")


if __name__ == "__main__":
    main()
