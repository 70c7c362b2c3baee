"""Repairing one folded section: the fold-aware model run in tiles, and the mask-and-fill baseline.

``repair_fold_section(model, folded, left, right, band_mask, device)`` runs a ``kind == "fold"``
model (e.g. ``sff``) over a section of any size; ``mask_and_fill`` replaces the band by the mean of
the neighbours. Both return a :class:`FoldRepair` (the repaired section and a uint8 mask of the
pixels that differ from the folded input).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from emrepair.callbacks import ProgressCallback
from emrepair.engine.aggregator import TiledAggregator, pad_to_multiple
from emrepair.engine.device import resolve_device
from emrepair.engine.inputs import check_pair
from emrepair.engine.memory import round_up
from emrepair.engine.tiling import auto_overlap
from emrepair.errors import UsageError
from emrepair.models.fold_blend import near_band_weight
from emrepair.models.kinds import is_fold

FINISH_REACH = 4  # with the finish step the model's result off the band is composed over reach 4 px + transition
INTERP_REACH = 128  # the interpolation is computed this far from the band (the finish step reads it within ~110 px)
UNTILED_MAX_SIDE = 1024  # sections up to this side run in one piece when no tile size is given
DEFAULT_TILE = 512


class FoldRepair(NamedTuple):
    """A repaired section.

    Attributes:
        image: (H, W) float32 in [0, 1].
        changed: (H, W) uint8, 1 where ``image`` differs from the folded input (synthesized pixels).
    """

    image: np.ndarray
    changed: np.ndarray


def check_fold_inputs(folded: np.ndarray, left: np.ndarray, right: np.ndarray, band_mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float32 copies of the three sections in [0, 1] and the band as bool, all of one (H, W) shape.

    Raises:
        ValueError: shapes or value ranges outside the contract; InputError: NaN or inf values.
    """
    folded32, left32 = check_pair(folded, left)
    _, right32 = check_pair(folded, right)
    band = np.asarray(band_mask)
    if band.shape != folded32.shape:
        raise ValueError(f"band_mask must have the section's shape {folded32.shape}, got {band.shape}")
    return folded32, left32, right32, band.astype(bool)


def changed_mask(image: np.ndarray, folded: np.ndarray) -> np.ndarray:
    """uint8 mask, 1 where the repaired image differs from the folded section."""
    return (image != folded).astype(np.uint8)


def mask_and_fill(folded: np.ndarray, left: np.ndarray, right: np.ndarray, band_mask: np.ndarray) -> FoldRepair:
    """The baseline: band pixels replaced by the mean of the two neighbours, everything else kept.

    Args:
        folded, left, right: (H, W) sections in [0, 1] (any real dtype).
        band_mask: (H, W) bool, True on the fold's dark band.
    """
    folded32, left32, right32, band = check_fold_inputs(folded, left, right, band_mask)
    image = folded32.copy()
    image[band] = 0.5 * (left32[band] + right32[band])
    return FoldRepair(image, changed_mask(image, folded32))


def repair_fold_section(model: nn.Module, folded: np.ndarray, left: np.ndarray, right: np.ndarray,
                        band_mask: np.ndarray, device: str | torch.device = "cpu", tile_size: int | None = None,
                        overlap: int | None = None, progress: ProgressCallback | None = None, finish: bool = True
                        ) -> FoldRepair:
    """Repair a folded section with a fold model (``model(folded, left, right, band)``, kind "fold").

    The model's pre-composition result (``model.restore``) is computed tile by tile over the
    section padded to the model's size multiple, blended with the engine's weights, and composed
    with the folded section once over the whole section, so pixels farther than the model's
    ``reach + transition`` from the band are returned bit-identical, unless the model's regional
    contrast correction (``model.section_gain``, run once on the whole section) rescaled them. Tiles
    with no pixel near the band are skipped.

    Args:
        model: an ``SFFModel``-like module with ``restore``, ``halo``, ``size_multiple`` and
            ``config.reach`` / ``config.transition``.
        folded, left, right: (H, W) sections in [0, 1]; left and right are the neighbours.
        band_mask: (H, W) bool, True on the dark band.
        device: "cpu", "cuda", "cuda:N" or "auto".
        tile_size: tile side; None runs sections up to 1024 px in one piece, larger ones in 512 tiles.
        overlap: pixels shared by neighbouring tiles; None for the engine's auto overlap.
        progress: called as progress(done_tiles, total_tiles).
        finish: pass the model's result through :func:`finish_fold_repair` (the pulled tissue pushed back
            where the neighbours allow a fit, the band filled from its own relit pixels and the neighbours,
            the band grown into dark pixels beside it); False gives the model's result alone.

    Raises:
        UsageError: a model without the fold interface, or a tile size too small for its halo.
    """
    if not is_fold(model):
        raise UsageError(f"model {getattr(model, 'name', type(model).__name__)!r} is not a fold repair model")
    folded32, left32, right32, band = check_fold_inputs(folded, left, right, band_mask)
    target = resolve_device(str(device)) if str(device) == "auto" else torch.device(device)
    model = model.to(target).eval()
    height, width = folded32.shape
    multiple, halo = int(model.size_multiple), int(model.halo)
    # with the finish step, the model's result off the band is kept only close to it (FINISH_REACH)
    reach = min(int(model.config.reach), FINISH_REACH) if finish else model.config.reach
    weight = near_band_weight(torch.from_numpy(band)[None, None].float(), reach,
                              model.config.transition)[0, 0].numpy()
    corrected = _correct_contrast(model, folded32, left32, right32, band, target)
    if not (weight > 0).any():
        return FoldRepair(corrected, changed_mask(corrected, folded32))

    side = round_up(max(height, width), multiple)  # of the padded section
    if tile_size is None:
        tile = side if max(height, width) <= UNTILED_MAX_SIDE else round_up(DEFAULT_TILE, multiple)
    else:
        tile = round_up(tile_size, multiple)
    if tile <= 2 * halo and tile < side:
        raise UsageError(f"tile size {tile} leaves no valid pixels for a halo of {halo}; use more than {2 * halo}")
    # the tiles near the band, out to where the finish step reads the interpolation (the pull's fit)
    near = _near_band(band, max(int(model.config.reach) + int(model.config.transition), INTERP_REACH))
    needed = pad_to_multiple(near.astype(np.float32), multiple) > 0
    tiled = TiledAggregator(model, target, halo, multiple, fixed_tile=tile_size is not None)
    fused_all, interpolated = tiled.run([corrected, left32, right32, band.astype(np.float32)],
                                        lambda crops, _ks: _fused_and_interpolated(model, crops), lambda: tile,
                                        lambda t: auto_overlap(t, halo) if overlap is None else overlap,
                                        channels=2, needed=lambda t: bool(needed[t.slices].any()),
                                        progress=progress)
    # clamp after composing, as the model's eval-mode forward does; folded pixels are already in [0, 1]
    image = np.clip(np.where(weight > 0, weight * fused_all + (1.0 - weight) * corrected, corrected), 0.0, 1.0)
    image = image.astype(np.float32)
    if finish:
        # the model's own interpolation (stage 1) near the band, the neighbours' mean beyond
        reference = np.where(near, interpolated, 0.5 * (left32 + right32)).astype(np.float32)
        image = finish_fold_repair(folded32, image, left32, right32, band, interpolated=reference)
    return FoldRepair(image, changed_mask(image, folded32))


def _near_band(band: np.ndarray, reach: int) -> np.ndarray:
    """Pixels within ``reach`` px (Euclidean) of the band."""
    import cv2

    return cv2.distanceTransform((~band).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= reach


def _fused_and_interpolated(model: nn.Module, crops: list[torch.Tensor]) -> torch.Tensor:
    """The model's pre-composition result and its stage-1 interpolation, as two channels."""
    parts = model.restore(*crops)
    return torch.cat([parts[0], parts[3]], dim=1)


def finish_fold_repair(folded: np.ndarray, repaired: np.ndarray, left: np.ndarray, right: np.ndarray,
                       band: np.ndarray, interpolated: np.ndarray | None = None) -> np.ndarray:
    """The last step of a fold repair: no dark band, no seam, the pulled tissue back where it was.

    Where the neighbours' average fits the folded section closely enough beside the band to measure the pull
    (``fold_pull``) and the pushed-back section matches the neighbours better there than the model's result,
    the tissue is pushed back and the model's result is not used off the band; elsewhere the model's result is
    kept off the band. The band (grown into the dark pixels beside it, plus the strip that pushing back
    uncovers) is filled by ``fold_fill.fill_band`` from the folded section's own pixels, the neighbours and the
    model's result.
    Only pixels in the band, the grown and uncovered strips, the pushed-back zone or the model's own reach change.

    Args:
        folded, repaired, left, right: (H, W) float32 in [0, 1]: the folded section, the model's result and
            the two neighbours (the same section twice for a first or last section).
        band: (H, W) bool band mask.
        interpolated: (H, W) float32, the section interpolated from its neighbours (the fold model's stage 1),
            the reference of the band's growth and fill; None for the neighbours' mean. The pull is always fitted
            against the neighbours' mean.
    """
    from emrepair.engine.fold_fill import fill_band, grow_band
    from emrepair.engine.fold_pull import unpull

    if not band.any():
        return repaired
    mean = 0.5 * (left + right)
    reference = mean if interpolated is None else interpolated
    # the pull is fitted against the neighbours' mean: fold_pull's trust thresholds were set with that reference
    # (against the interpolation, wrong fits on ssTEM pass them)
    pushed, moved, hidden, _ = unpull(folded, mean, band)
    fill = grow_band(pushed, reference, band | hidden)
    if moved.any() and not _better_beside(pushed, repaired, reference, moved & ~fill):
        pushed, moved, fill = folded, np.zeros_like(moved), grow_band(folded, reference, band)
    base = pushed if moved.any() else repaired
    source = np.where(fill, pushed, base).astype(np.float32)
    return fill_band(source, reference, fill, model=repaired)


def _better_beside(pushed: np.ndarray, repaired: np.ndarray, reference: np.ndarray, zone: np.ndarray) -> bool:
    """Whether the pushed-back section matches the neighbours' average better than the model's result over
    ``zone``, less its 6 px next to anything else (correlation of the 2 px-smoothed images)."""
    import cv2

    # the band and the strip it hides stay 6 px away, so that smoothing does not carry them into the zone
    zone = zone & ~(cv2.dilate((~zone).astype(np.uint8), np.ones((13, 13), np.uint8)) > 0)
    if zone.sum() < 256:
        return False
    smooth = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2.0)[zone] for x in (pushed, repaired, reference)]
    ncc = [float(np.corrcoef(x, smooth[2])[0, 1]) for x in smooth[:2]]
    return ncc[0] > ncc[1]


def _correct_contrast(model: nn.Module, folded: np.ndarray, left: np.ndarray, right: np.ndarray,
                      band: np.ndarray, device: torch.device) -> np.ndarray:
    """The folded section after the model's regional contrast correction (a copy; unchanged when the
    model has none)."""
    if not hasattr(model, "section_gain"):
        return folded.copy()
    from emrepair.models.regional_gain import apply_gain

    tensors = [torch.from_numpy(x)[None, None].to(device) for x in (folded, left, right, band.astype(np.float32))]
    with torch.inference_mode():
        log_gain = model.section_gain(*tensors)
        out = apply_gain(tensors[0], log_gain)
    return out[0, 0].float().cpu().numpy().astype(np.float32)
