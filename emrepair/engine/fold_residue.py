"""What a fold repair may leave behind, measured: a dark band, a seam, pixels changed outside the masks.

Used by benchmarks/bench_fix_folds.py and the fold tests. All images float in [0, 1] and of one (H, W) shape.
"""

from __future__ import annotations

import cv2
import numpy as np

TILE = 32  # the neighbours' darkest pixels are taken per tile of this side
DARK_PERCENT = 2.0  # "the darkest few percent of the same place in the neighbours"
SEAM_RING = (1, 6)  # the seam is judged this far (px) outside the band
SEAM_RADIUS = 7  # over local means of this radius


def neighbour_floor(left: np.ndarray, right: np.ndarray, tile: int = TILE, percent: float = DARK_PERCENT
                    ) -> np.ndarray:
    """Per pixel, the ``percent`` percentile of both neighbours' pixels in its ``tile`` x ``tile`` tile."""
    h, w = left.shape
    ty, tx = -(-h // tile), -(-w // tile)
    floor = np.empty((ty, tx), np.float32)
    for i in range(ty):
        for j in range(tx):
            ys, xs = slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile)
            values = np.concatenate([left[ys, xs].ravel(), right[ys, xs].ravel()])
            floor[i, j] = np.percentile(values, percent)
    return np.repeat(np.repeat(floor, tile, axis=0), tile, axis=1)[:h, :w]


def dark_residue(image: np.ndarray, left: np.ndarray, right: np.ndarray, band: np.ndarray) -> float:
    """Percentage of band pixels of ``image`` darker than the neighbours' darkest ``DARK_PERCENT`` % at that
    place (the clean section itself scores about ``DARK_PERCENT``); 0 for an empty band."""
    if not band.any():
        return 0.0
    floor = neighbour_floor(left, right)
    return 100.0 * float((image[band] < floor[band]).mean())


def seam_ring(band: np.ndarray, ring: tuple[int, int] = SEAM_RING) -> np.ndarray:
    """Pixels between ``ring[0]`` and ``ring[1]`` px outside ``band``."""
    dist = cv2.distanceTransform((~band).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (dist > ring[0]) & (dist <= ring[1])


def seam_contrast(image: np.ndarray, truth: np.ndarray, band: np.ndarray) -> float:
    """Mean absolute local (``SEAM_RADIUS``) brightness error on the ring around the band, in grey levels of
    255: a seam brighter or darker than the tissue there shows as a large value; 0 for an empty band."""
    ring = seam_ring(band)
    if not ring.any():
        return 0.0
    size = (2 * SEAM_RADIUS + 1,) * 2
    weight = ring.astype(np.float32)
    diff = (image.astype(np.float32) - truth.astype(np.float32)) * weight
    num = cv2.boxFilter(diff, -1, size, normalize=False, borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(weight, -1, size, normalize=False, borderType=cv2.BORDER_REFLECT)
    local = np.divide(num, den, out=np.zeros_like(num), where=den > 0.5)
    return 255.0 * float(np.abs(local[ring]).mean())


def changed_outside(original: np.ndarray, repaired: np.ndarray, masks: np.ndarray) -> int:
    """How many pixels differ between ``original`` and ``repaired`` where ``masks`` is 0 (any shapes alike)."""
    return int(((original != repaired) & (np.asarray(masks) == 0)).sum())
