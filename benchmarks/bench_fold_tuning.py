"""The fold detector's tuning set: family-A folds made faint or thin, and the untouched stacks.

Family B (``bench_detect.py``) is held out for measuring; the fold detector's thresholds, the z cue
included, were set on this instead. Per stack of ../shared/data, ``simulate_fold`` (family A) folds in
up to 6 odd sections that are not held out (z % 5 != 2): a third faint (darkness 0.3-0.6, 6-40 px), a
third thin (2-4 px) and a third with two default folds in one section (``two``; a hit only when the band IoU
of both together is at least 0.5, i.e. both were found). ``find_folds`` runs on every section of the untouched stacks (flags) and on the folded sections,
alone and with both neighbours passed (the z cue). Prints recall, band IoU, flags and CPU seconds.

    python benchmarks/bench_fold_tuning.py [--data ../shared/data] [--seed 7] [--per-stack 6] [--no-clean] [--variants faint thin two bowed]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

from emrepair.detection import DetectConfig
from emrepair.detection.fold_detect import find_folds, fold_band_mask
from emrepair.detection.section_stats import clean_section, section_stats
from emrepair.simulate import FoldParams, simulate_fold
from emrepair.training.stacks import is_held_out

VARIANTS = {"faint": FoldParams(darkness=(0.3, 0.6), line_width=(6, 40)), "thin": FoldParams(line_width=(2, 4)),
            "two": FoldParams(),
            # opt-in (--variants): thin lines bowed by up to 5 % of their chord, with a knot (see ``knotted``)
            "bowed": FoldParams(line_width=(2, 4), curvature_prob=1.0, max_sagitta=0.05),
            # opt-in: default folds broken into pieces, partly washed out, or along a border; faint ones broken
            "broken": FoldParams(), "washed": FoldParams(), "border": FoldParams(),
            "faint_broken": FoldParams(darkness=(0.3, 0.6), line_width=(6, 40)),
            "wavy": FoldParams(line_width=(2, 4))}
DEFAULT_VARIANTS = ("faint", "thin", "two")


def _along(fold, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel's position along the fold's chord, 0 at one end and 1 at the other (clipped)."""
    x0, y0, x1, y1 = fold.line
    length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-9)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length**2, 0.0, 1.0)


def broken(raw: np.ndarray, fold, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The fold with 1-3 gaps (each 5-15 % of its chord, away from its ends) where the section is untouched; the
    image and the band without the gaps."""
    along = _along(fold, raw.shape)
    gap = np.zeros(raw.shape, bool)
    for _ in range(int(rng.integers(1, 4))):
        size = rng.uniform(0.05, 0.15)
        start = rng.uniform(0.1, 0.9 - size)
        gap |= (along >= start) & (along < start + size)
    image = fold.image.copy()
    image[gap] = raw[gap]
    return image, fold.band_mask & ~gap


def washed(raw: np.ndarray, fold, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The fold faded smoothly over a stretch of 20-50 % of its chord to 30-60 % of its darkening at the middle
    (partial film overlap); the image and the band (all of it: still darker than the tissue)."""
    along = _along(fold, raw.shape)
    size = rng.uniform(0.2, 0.5)
    mid = rng.uniform(size / 2, 1 - size / 2)
    keep = rng.uniform(0.3, 0.6)
    bump = np.clip(1 - np.abs(along - mid) / (size / 2), 0.0, 1.0)
    weight = 1 - (1 - keep) * (0.5 - 0.5 * np.cos(np.pi * bump))
    mixed = raw.astype(np.float32) + (fold.image.astype(np.float32) - raw.astype(np.float32)) * weight
    if raw.dtype.kind in "ui":
        mixed = np.clip(np.rint(mixed), np.iinfo(raw.dtype).min, np.iinfo(raw.dtype).max)
    return mixed.astype(raw.dtype), fold.band_mask


def wavy(raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin fold that wanders: the section is shifted across the fold's chord by a sine of 1-3 periods along it
    (up to 1-2 % of the chord), the same fold simulated on it (same draws) and the result shifted back, so the
    tissue stays in place (to a pixel) and only the band wanders; the image and the band."""
    replay = copy.deepcopy(rng)
    line = simulate_fold(raw, rng, VARIANTS["wavy"]).line  # where the fold will lie: the draws do not see pixels
    x0, y0, x1, y1 = line
    length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-9)
    normal = np.array([-(y1 - y0), x1 - x0]) / length
    yy, xx = np.mgrid[0:raw.shape[0], 0:raw.shape[1]].astype(np.float32)
    along = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length**2, 0.0, 1.0)
    shift = rng.uniform(0.01, 0.02) * length * np.sin(2 * np.pi * rng.uniform(1, 3) * along + rng.uniform(0, 2 * np.pi))

    def moved(image: np.ndarray, sign: float, interpolation: int) -> np.ndarray:
        map_x = (xx + sign * shift * normal[0]).astype(np.float32)
        map_y = (yy + sign * shift * normal[1]).astype(np.float32)
        return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REFLECT)

    # nearest-pixel moves, so that a 2 px line is not blurred lighter by resampling
    fold = simulate_fold(moved(raw, 1.0, cv2.INTER_NEAREST), replay, VARIANTS["wavy"])
    return moved(fold.image, -1.0, cv2.INTER_NEAREST), moved(fold.band_mask.astype(np.uint8), -1.0, cv2.INTER_NEAREST) > 0


def along_border(raw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A default fold simulated in a strip along a random border (15-30 % of the side deep) from one short end of
    the strip to the other, so that it runs near and roughly parallel to that border; the image and the band."""
    h, w = raw.shape
    side = int(rng.integers(4))
    deep = int(rng.uniform(0.15, 0.3) * (h if side in (0, 2) else w))
    strip = (slice(0, deep), slice(None)) if side == 0 else (slice(h - deep, h), slice(None)) if side == 2 \
        else (slice(None), slice(0, deep)) if side == 3 else (slice(None), slice(w - deep, w))
    part = raw[strip]
    long_side, short_side = max(part.shape), min(part.shape)
    widest = max(5, min(50, short_side // 2))  # the band stays inside its strip
    fold = simulate_fold(part, rng, FoldParams(line_width=(5, widest), min_length_frac=0.9 * long_side / short_side))
    image, band = raw.copy(), np.zeros(raw.shape, bool)
    image[strip], band[strip] = fold.image, fold.band_mask
    return image, band


def knotted(image: np.ndarray, band: np.ndarray, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A near-black disc (radius 1-2.5 band widths) on a random point of the band, where the film bunched; the
    image and the band with the knot."""
    ys, xs = np.nonzero(band)
    j = int(rng.integers(ys.size))
    knot = np.zeros(band.shape, np.uint8)
    cv2.circle(knot, (int(xs[j]), int(ys[j])), max(2, int(width * rng.uniform(1.0, 2.5))), 1, -1)
    out = image.copy()
    out[knot > 0] = image[band].min()
    return out, band | (knot > 0)


def run(stack: np.ndarray, z: int, z_cue: bool, config: DetectConfig) -> tuple[list, float]:
    """``find_folds`` on section ``z`` (with its neighbours when ``z_cue``); the folds and CPU seconds."""
    values, nonfinite = clean_section(stack[z])
    stats = section_stats(values, nonfinite, config)
    neighbours = None
    if z_cue:
        neighbours = tuple(clean_section(stack[j])[0] if 0 <= j < stack.shape[0] else None for j in (z - 1, z + 1))
    start = time.process_time()
    folds = find_folds(values, stats.black, stats.median, config, neighbours=neighbours)
    return folds, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-stack", type=int, default=6, help="folded sections per stack")
    parser.add_argument("--no-clean", action="store_true", help="skip the untouched stacks (faster; no flags)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS),
                        help="fold variants, taken in turn (default: faint thin two)")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.h5"))
    if not files:
        raise SystemExit(f"no .h5 stacks in {args.data}")
    rng = np.random.default_rng(args.seed)
    config = DetectConfig()
    variants = list(args.variants)
    hits = {(k, z): [] for k in (*variants, "clean") for z in (False, True)}
    ious = {(k, z): [] for k in variants for z in (False, True)}
    seconds = {z: 0.0 for z in (False, True)}
    for path in files:
        with h5py.File(path, "r") as f:
            raw = f["raw"][:]
        for z_cue in (False, True) if not args.no_clean else ():
            for z in range(raw.shape[0]):
                folds, s = run(raw, z, z_cue, config)
                hits[("clean", z_cue)].append(int(bool(folds)))
                seconds[z_cue] += s
        odd = [z for z in range(1, raw.shape[0], 2) if not is_held_out(z)]
        for i, z in enumerate(rng.choice(odd, size=min(args.per_stack, len(odd)), replace=False)):
            kind = variants[i % len(variants)]
            fold = simulate_fold(raw[z], rng, VARIANTS[kind])
            band, image = fold.band_mask, fold.image
            if kind == "two":
                fold = simulate_fold(fold.image, rng, VARIANTS[kind])
                band, image = band | fold.band_mask, fold.image
            if kind == "bowed":
                image, band = knotted(image, band, fold.width_px, rng)
            if kind in ("broken", "faint_broken"):
                image, band = broken(raw[z], fold, rng)
            if kind == "washed":
                image, band = washed(raw[z], fold, rng)
            if kind == "border":
                image, band = along_border(raw[z], rng)
            if kind == "wavy":
                image, band = wavy(raw[z], rng)
            folded = raw.copy()
            folded[z] = image
            for z_cue in (False, True):
                folds, _ = run(folded, int(z), z_cue, config)
                iou = 0.0
                if folds:
                    pred = fold_band_mask(folds, band.shape, max(band.shape))
                    iou = float((pred & band).sum() / max((pred | band).sum(), 1))
                    ious[(kind, z_cue)].append(iou)
                hits[(kind, z_cue)].append(int(bool(folds) and (kind != "two" or iou >= 0.5)))
        print(f"{path.name}: done", flush=True)
    for z_cue in (False, True):
        label = "with the z cue" if z_cue else "section alone "
        parts = [f"{k} recall {np.mean(hits[(k, z_cue)]):.3f} (n={len(hits[(k, z_cue)])}, band IoU "
                 f"{np.mean(ious[(k, z_cue)] or [0]):.3f}, worst {np.min(ious[(k, z_cue)] or [0]):.3f})"
                 for k in variants]
        print(f"{label}: " + ", ".join(parts) + f", untouched flags {sum(hits[('clean', z_cue)])} of "
              f"{len(hits[('clean', z_cue)])}, find_folds CPU {seconds[z_cue]:.1f} s on the untouched stacks")


if __name__ == "__main__":
    main()
