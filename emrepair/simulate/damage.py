"""Simulated staining precipitates and regional contrast changes, for benchmarks and tests only.

Written from what they look like (Deng et al., TMI 2022, and the contrast boxes of the fold simulators), with an
appearance drawn independently of the detector's rules (emrepair.detection.precipitates, contrast_regions): a
precipitate is a union of random ellipses and spiky star polygons (a blob or a flake), 16-90 px across, filled
with a grainy near-black stain (2-18 % of the section's median) whose edge is softened over about a pixel; a
section gets one to five, sometimes clustered. A contrast change is an axis-aligned or rotated rectangle, or a
smooth random polygon, of 6-35 % of the section, dimmed, brightened, stretched or flattened (a gain and an offset
drawn per region), with a sharp or slightly feathered edge. Nothing here is tuned to the detector's thresholds;
the benchmark reports what falls below them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CONTRAST_MODES = ("dim", "bright", "stretch", "flatten")


@dataclass
class DamageResult:
    """A damaged section and the truth: ``mask`` of the damaged pixels (the whole region for contrast), one bool mask per precipitate in
    ``parts`` (empty for contrast), and what was done (``mode``: precipitate or a CONTRAST_MODES entry,
    ``gain``/``offset`` for contrast)."""

    image: np.ndarray
    mask: np.ndarray
    parts: list[np.ndarray]
    mode: str
    gain: float = 1.0
    offset: float = 0.0


def _shape(side: int, rng: np.random.Generator) -> np.ndarray:
    """A blob or flake mask of about ``side`` px: a few ellipses and star polygons, in a (2 side)^2 patch."""
    size = 2 * side
    patch = np.zeros((size, size), np.uint8)
    centre = np.array([side, side], float)
    for _ in range(int(rng.integers(1, 4))):
        offset = rng.normal(0, side / 6, 2)
        if rng.random() < 0.5:
            axes = (max(2, int(rng.uniform(0.2, 0.5) * side)), max(2, int(rng.uniform(0.15, 0.45) * side)))
            cv2.ellipse(patch, tuple(int(v) for v in centre + offset), axes, float(rng.uniform(0, 180)), 0, 360,
                        1, -1)
        else:
            k = int(rng.integers(5, 12))
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = side * rng.uniform(0.12, 0.5, k)
            pts = centre + offset + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
            cv2.fillPoly(patch, [np.round(pts).astype(np.int32)], 1)
    return patch.astype(bool)


def simulate_precipitates(section: np.ndarray, rng: np.random.Generator, count: int | None = None) -> DamageResult:
    """Stain precipitates on a uint8 (or other integer) section; the truth marks every darkened pixel."""
    h, w = section.shape
    values = section.astype(np.float32)
    median = float(np.median(values[::2, ::2]))
    count = int(rng.integers(1, 6)) if count is None else count
    alpha = np.zeros((h, w), np.float32)
    parts = []
    anchor = rng.uniform([0.1 * h, 0.1 * w], [0.9 * h, 0.9 * w])
    for _ in range(count):
        side = int(rng.uniform(16, 90) / 2)
        centre = anchor + rng.normal(0, 0.08 * min(h, w), 2) if rng.random() < 0.4 else \
            rng.uniform([0.05 * h, 0.05 * w], [0.95 * h, 0.95 * w])
        y0, x0 = int(centre[0]) - side, int(centre[1]) - side
        patch = _shape(side, rng)
        full = np.zeros((h, w), bool)
        ys, xs = slice(max(0, y0), min(h, y0 + 2 * side)), slice(max(0, x0), min(w, x0 + 2 * side))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        full[ys, xs] = patch[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]
        if full.sum() < 30:
            continue
        parts.append(full)
        soft = cv2.GaussianBlur(full.astype(np.float32), (0, 0), rng.uniform(0.5, 1.2))
        alpha = np.maximum(alpha, np.where(full, np.maximum(soft, 0.85), soft))
    level = rng.uniform(0.02, 0.18) * median
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(0.6, 1.5))
    stain = np.clip(level * (1 + 0.5 * grain / max(float(grain.std()), 1e-6)), 0, None)
    out = values * (1 - alpha) + stain * alpha
    info = np.iinfo(section.dtype) if section.dtype.kind in "ui" else None
    image = np.clip(np.rint(out), info.min, info.max).astype(section.dtype) if info else out.astype(section.dtype)
    mask = image != section
    return DamageResult(image, mask, [p & mask for p in parts], "precipitate")


def _region(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A rectangle (axis-aligned or rotated) or a smooth polygon of about ``fraction`` of the section."""
    h, w = shape
    kind = rng.choice(["box", "rotated", "polygon"], p=[0.5, 0.25, 0.25])
    area = fraction * h * w
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    mask = np.zeros(shape, np.uint8)
    if kind == "polygon":
        k = int(rng.integers(6, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.7, 1.0, k)
        scale = np.sqrt(area / (np.pi * np.mean(radii ** 2)))
        pts = np.stack([cx + scale * radii * np.cos(angles), cy + scale * radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    else:
        aspect = rng.uniform(0.5, 2.0)
        bw, bh = np.sqrt(area * aspect), np.sqrt(area / aspect)
        angle = 0.0 if kind == "box" else float(rng.uniform(-40, 40))
        box = cv2.boxPoints(((cx, cy), (bw, bh), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    return mask.astype(bool)


def simulate_contrast(section: np.ndarray, rng: np.random.Generator, fraction: float | None = None,
                      mode: str | None = None) -> DamageResult:
    """A regional contrast change on an integer section: a gain and offset inside a region (see the module)."""
    fraction = float(rng.uniform(0.06, 0.35)) if fraction is None else fraction
    mode = str(rng.choice(CONTRAST_MODES)) if mode is None else mode
    region = _region(section.shape, fraction, rng)
    values = section.astype(np.float32)
    mean = float(values[region].mean()) if region.any() else 0.0
    if mode == "dim":
        gain, offset = rng.uniform(0.5, 0.75), 0.0
    elif mode == "bright":
        gain, offset = rng.uniform(1.3, 1.6), 0.0
    elif mode == "stretch":
        gain = rng.uniform(1.6, 2.2)
        offset = mean * (1 - gain)
    else:
        gain = rng.uniform(0.35, 0.6)
        offset = mean * (1 - gain)
    weight = region.astype(np.float32)
    if rng.random() < 0.5:  # a slightly feathered edge
        weight = np.clip(cv2.GaussianBlur(weight, (0, 0), rng.uniform(0.8, 2.0)) * 1.0, 0, 1)
    out = values + weight * (values * (gain - 1) + offset)
    info = np.iinfo(section.dtype)
    image = np.clip(np.rint(out), info.min, info.max).astype(section.dtype)
    return DamageResult(image, region, [], mode, float(gain), float(offset))
