"""Image quality metrics on [0, 1] float sections: PSNR and SSIM, as used by eval and training validation."""

from __future__ import annotations

import math

import numpy as np


def _check_pair(image: np.ndarray, reference: np.ndarray) -> None:
    if image.ndim != 2 or reference.shape != image.shape:
        raise ValueError(f"expected two (H, W) images of one shape, got {image.shape} and {reference.shape}")


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of ``image`` against ``reference``, both (H, W) in [0, 1] (data range 1).

    Identical images give ``inf``.
    """
    _check_pair(image, reference)
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity (scikit-image, 7x7 window, data range 1) of two (H, W) images in [0, 1]."""
    from skimage.metrics import structural_similarity

    _check_pair(image, reference)
    if min(image.shape) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {image.shape}")
    return float(structural_similarity(image.astype(np.float64), reference.astype(np.float64), data_range=1.0))
