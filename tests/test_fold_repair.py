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
    """Random folded/left/right sections with a dark diagonal band."""
    rng = np.random.default_rng(0)
    folded, left, right = (rng.random((h, w), dtype=np.float32) for _ in range(3))
    yy, xx = np.mgrid[0:h, 0:w]
    band = np.abs(yy - 0.5 * xx - 10) < 2
    folded[band] *= 0.1  # a fold's band is dark
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
    result = repair_fold_section(model, folded, left, right, band, finish=False)
    with torch.no_grad():
        direct = model(*(torch.from_numpy(x.astype(np.float32))[None, None] for x in (folded, left, right, band)))
    assert np.allclose(result.image, direct[0, 0].numpy(), atol=1e-6)


def test_no_band_returns_the_section_and_other_models_are_refused() -> None:
    folded, left, right, band = sections()
    result = repair_fold_section(scrambled_model(), folded, left, right, np.zeros_like(band))
    assert np.array_equal(result.image, folded) and not result.changed.any()
    with pytest.raises(UsageError, match="not a fold repair model"):
        repair_fold_section(GANModel(), folded, left, right, band)


def tissue(seed: int, h: int = 160, w: int = 160) -> np.ndarray:
    """A smooth random texture in [0.2, 0.8] (blurred noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    x = (x - x.min()) / (x.max() - x.min())
    return (0.2 + 0.6 * x).astype(np.float32)


def folded_tissue(darkness: float, amp: float = 0.0, decay: float = 12.0):
    """(clean, folded, left, right, band): a horizontal band of rows 70-77 darkened by ``darkness``, the tissue
    beside it pulled toward it by ``amp * exp(-d / decay)`` px, and neighbours = clean + a little noise."""
    import cv2

    clean = tissue(1)
    h, w = clean.shape
    rng = np.random.default_rng(2)
    left, right = (np.clip(clean + rng.normal(0, 0.02, clean.shape), 0, 1).astype(np.float32) for _ in range(2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    band = (yy >= 70) & (yy <= 77)
    dist = np.where(yy < 70, 70 - yy, np.where(yy > 77, yy - 77, 0)).astype(np.float32)
    away = np.where(yy < 70, -1.0, 1.0).astype(np.float32)
    m = amp * np.exp(-dist / decay) * (~band)
    folded = cv2.remap(clean, xx, yy + away * m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    folded = np.where(band, folded * (1 - darkness), folded).astype(np.float32)
    return clean, folded, left, right, band


def test_finish_leaves_no_dark_band_and_no_seam() -> None:
    from emrepair.engine.fold_repair import finish_fold_repair
    from emrepair.engine.fold_residue import (
        DARK_PERCENT,
        dark_residue,
        seam_contrast,
    )

    clean, folded, left, right, band = folded_tissue(0.95)
    assert dark_residue(folded, left, right, band) > 90  # the fold is darker than the neighbours' darkest
    image = finish_fold_repair(folded, folded, left, right, band)
    assert dark_residue(image, left, right, band) <= 2 * DARK_PERCENT
    assert seam_contrast(image, clean, band) < 3.0  # grey levels of 255
    assert abs(float(image[band].mean() - clean[band].mean())) < 0.02


def test_faint_band_keeps_its_own_tissue() -> None:
    from emrepair.engine.fold_repair import finish_fold_repair

    clean, folded, left, right, band = folded_tissue(0.4)
    image = finish_fold_repair(folded, folded, left, right, band)
    fill = mask_and_fill(folded, left, right, band).image
    error = lambda x: float(np.abs(x[band] - clean[band]).mean())
    assert error(image) < 0.5 * error(fill)  # relit own pixels beat the neighbours' average


def test_pulled_tissue_is_pushed_back_and_nothing_far_changes() -> None:
    from emrepair.engine.fold_pull import MOVE_REACH, unpull
    from emrepair.engine.fold_repair import finish_fold_repair

    clean, folded, left, right, band = folded_tissue(0.95, amp=8.0, decay=12.0)
    _, _, _, pulls = unpull(folded, 0.5 * (left + right), band)
    assert len(pulls) == 1 and pulls[0].trusted and abs(pulls[0].amp - 8.0) <= 2.0
    image = finish_fold_repair(folded, folded, left, right, band)
    beside = binary_dilation(band, iterations=30) & ~binary_dilation(band, iterations=12)
    error = lambda x: float(np.abs(x[beside] - clean[beside]).mean())
    assert error(image) < 0.5 * error(folded)
    far = ~binary_dilation(band, structure=np.ones((3, 3)), iterations=MOVE_REACH)
    assert np.array_equal(image[far], folded[far])


def test_unrelated_neighbours_move_nothing() -> None:
    from emrepair.engine.fold_pull import unpull

    _clean, folded, _, _, band = folded_tissue(0.95, amp=8.0)
    other = tissue(7)  # neighbours that do not resemble the section: no pull is trusted
    image, moved, _hidden, pulls = unpull(folded, other, band)
    assert not any(p.trusted for p in pulls) and not moved.any() and np.array_equal(image, folded)


def test_a_mask_wider_than_the_dark_band_changes_nothing_beside_it() -> None:
    from emrepair.engine.fold_fill import fill_band

    clean, folded, left, right, band = folded_tissue(0.9)
    wide = binary_dilation(band, iterations=5)  # the mask reaches 5 px beyond the dark rows on both sides
    image = fill_band(folded, 0.5 * (left + right), wide)
    beside = wide & ~binary_dilation(band, iterations=1)
    assert np.array_equal(image[beside], folded[beside])  # pixels the fold did not darken keep their values
    assert not np.array_equal(image[band], folded[band])
    assert abs(float(image[band].mean() - clean[band].mean())) < 0.02


def test_a_washed_out_stretch_is_relit_to_its_own_level() -> None:
    from emrepair.engine.fold_fill import attenuation

    clean, folded, left, right, band = folded_tissue(0.0)
    # darkness fades along the band: 0.9 at the left end, 0.3 at the right
    fade = np.linspace(0.9, 0.3, clean.shape[1], dtype=np.float32)[None, :]
    folded = np.where(band, clean * (1 - fade), folded).astype(np.float32)
    kept = attenuation(folded, 0.5 * (left + right), band)
    assert abs(float(kept[band].reshape(8, -1)[:, :20].mean()) - 0.12) < 0.06  # left end: ~0.1 kept
    assert abs(float(kept[band].reshape(8, -1)[:, -20:].mean()) - 0.68) < 0.06  # right end: ~0.7 kept
    assert np.all(kept[~band] == 1.0)


def test_finish_keeps_the_models_result_only_close_to_the_band() -> None:
    from emrepair.engine.fold_repair import FINISH_REACH

    model = scrambled_model()
    folded, left, right, band = sections()
    alone = repair_fold_section(model, folded, left, right, band, finish=False)
    finished = repair_fold_section(model, folded, left, right, band)
    ring = binary_dilation(band, structure=np.ones((3, 3)), iterations=TINY.reach + TINY.transition) & \
        ~binary_dilation(band, structure=np.ones((3, 3)), iterations=FINISH_REACH + TINY.transition)
    assert alone.changed[ring].any()  # the model alone reaches its own composition reach
    assert not finished.changed[ring].any()  # the finish keeps the folded pixels there
