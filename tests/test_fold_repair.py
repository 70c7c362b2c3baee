"""repair_fold_section (tiled) and the mask-and-fill baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from emrepair.engine.fold_repair import mask_and_fill, repair_fold_section
from emrepair.errors import UsageError
from emrepair.models import GANModel, SFFConfig, SFFModel

# halo covers the tiny U-Nets' receptive field plus the largest flow, so tiles see enough context
TINY = SFFConfig(unfold_channels=4, fusion_channels=4, levels=2, max_flow=2.0, reach=6, transition=3, halo=14,
                 contrast_channels=0)


def sections(h: int = 70, w: int = 90) -> tuple[np.ndarray, ...]:
    """Random folded/left/right sections with a diagonal band."""
    rng = np.random.default_rng(0)
    folded, left, right = (rng.random((h, w), dtype=np.float32) for _ in range(3))
    yy, xx = np.mgrid[0:h, 0:w]
    band = np.abs(yy - 0.5 * xx - 10) < 2
    return folded, left, right, band


def scrambled_model() -> SFFModel:
    torch.manual_seed(0)
    model = SFFModel(TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def test_mask_and_fill_changes_only_the_band() -> None:
    folded, left, right, band = sections()
    image, changed = mask_and_fill(folded, left, right, band)
    assert np.array_equal(image[~band], folded[~band])
    assert np.allclose(image[band], 0.5 * (left[band] + right[band]))
    assert changed.dtype == np.uint8 and np.array_equal(changed.astype(bool), image != folded)
    with pytest.raises(ValueError, match="band_mask"):
        mask_and_fill(folded, left, right, band[:10])


def test_tiled_repair_matches_untiled_and_keeps_far_pixels(device: torch.device) -> None:
    model = scrambled_model()
    folded, left, right, band = sections()
    whole = repair_fold_section(model, folded, left, right, band, device=device)
    calls: list[tuple[int, int]] = []
    tiled = repair_fold_section(model, folded, left, right, band, device=device, tile_size=48, overlap=36,
                                progress=lambda done, total: calls.append((done, total)))
    assert whole.image.shape == folded.shape and whole.image.dtype == np.float32
    assert np.abs(tiled.image - whole.image).max() < 0.05
    assert np.abs(tiled.image - whole.image).mean() < 0.005
    assert calls[-1][0] == calls[-1][1] > 1
    # pixels whose Chebyshev distance to the band exceeds reach + transition stay bit-identical
    near = binary_dilation(band, structure=np.ones((3, 3)), iterations=6 + 3)
    far = ~near
    assert np.array_equal(whole.image[far], folded[far]) and np.array_equal(tiled.image[far], folded[far])
    assert whole.changed[band].all() and not whole.changed[far].any()


def test_repair_matches_the_model_on_one_tile() -> None:
    model = scrambled_model()
    folded, left, right, band = sections(64, 64)
    result = repair_fold_section(model, folded, left, right, band)
    with torch.no_grad():
        direct = model(*(torch.from_numpy(x.astype(np.float32))[None, None] for x in (folded, left, right, band)))
    assert np.allclose(result.image, direct[0, 0].numpy(), atol=1e-6)


def test_no_band_returns_the_section_and_other_models_are_refused() -> None:
    folded, left, right, band = sections()
    result = repair_fold_section(scrambled_model(), folded, left, right, np.zeros_like(band))
    assert np.array_equal(result.image, folded) and not result.changed.any()
    with pytest.raises(UsageError, match="not a fold repair model"):
        repair_fold_section(GANModel(), folded, left, right, band)
