"""Simulated folds in real sections for training and benchmarking the fold repair model.

The stacks of ``../shared/data`` are split by z as ``emrepair train`` splits them: every fifth section
(z % 5 == 2) is held out for validation and benchmarks, so an interpolation model trained with
``emrepair train`` on the same stacks never saw the held-out sections either. A fold example is a crop of a middle section folded by
``emrepair.simulate.simulate_fold``, its two neighbours (``step`` sections away) and the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emrepair.errors import InputError
from emrepair.simulate import FoldParams, simulate_fold
from emrepair.training.stacks import is_held_out


@dataclass(frozen=True)
class FoldStackSpec:
    """One stack used for fold training: its file, neighbour spacing and z split.

    Attributes:
        name: the HDF5 file's stem in the data folder.
        step: neighbours are ``step`` sections away (FIB-SEM decimated to an ssTEM-like spacing).
        licence: terms of the data, for model cards.
    """

    name: str
    step: int
    licence: str


FOLD_STACKS = (
    FoldStackSpec("isbi2012_train", 1, "non-commercial; cite Cardona et al. 2010"),
    FoldStackSpec("vnc_stack1", 1, "CC BY-NC-SA 3.0; Gerhard et al., doi:10.6084/m9.figshare.856713"),
    FoldStackSpec("neuroproof_medulla_train1", 4, "CC BY (HHMI Janelia FlyEM)"),
)


def split_fold_sections(depth: int, step: int) -> tuple[list[int], list[int]]:
    """(train, val) middle sections: a training triplet (z - step, z, z + step) has no held-out section;
    a validation one has a held-out middle section."""
    middles = range(step, depth - step)
    train = [z for z in middles if not any(is_held_out(z + d) for d in (-step, 0, step))]
    return train, [z for z in middles if is_held_out(z)]


@dataclass
class FoldStack:
    """A loaded stack and the middle sections usable for training and for validation."""

    spec: FoldStackSpec
    volume: np.ndarray
    train_z: list[int]
    val_z: list[int]


@dataclass
class FoldExample:
    """One simulated fold: float32 (H, W) arrays in [0, 1] and the ground truth.

    Attributes:
        folded, left, right, clean: the folded section, its neighbours, the section before folding.
        band: bool band mask.
        displacement: (2, H, W) (dy, dx) of the simulator: folded(p) = clean(p + d(p)).
        inverse: (2, H, W) (dy, dx) that unfolds: clean(p) ~ folded(p + inverse(p)).
    """

    folded: np.ndarray
    left: np.ndarray
    right: np.ndarray
    clean: np.ndarray
    band: np.ndarray
    displacement: np.ndarray
    inverse: np.ndarray


def load_fold_stacks(data_dir: Path, names: tuple[str, ...] | None = None) -> list[FoldStack]:
    """Load the fold stacks present in ``data_dir`` (uint8 (z, y, x) arrays) with their z splits.

    Raises:
        InputError: when none of the stacks is present.
    """
    import h5py

    stacks = []
    for spec in FOLD_STACKS:
        path = Path(data_dir) / f"{spec.name}.h5"
        if (names is not None and spec.name not in names) or not path.is_file():
            continue
        with h5py.File(path, "r") as fh:
            volume = np.asarray(fh["raw"][:], dtype=np.uint8)
        train_z, val_z = split_fold_sections(volume.shape[0], spec.step)
        stacks.append(FoldStack(spec, volume, train_z, val_z))
    if not stacks:
        raise InputError(f"no fold training stacks found in {data_dir}")
    return stacks


def inverse_displacement(displacement: np.ndarray, iterations: int = 8) -> np.ndarray:
    """The (dy, dx) field u with u(p) = -d(p + u(p)), by fixed-point iteration (d is small and smooth)."""
    if displacement.ndim != 3 or displacement.shape[0] != 2:
        raise ValueError(f"displacement must be (2, H, W), got {displacement.shape}")
    h, w = displacement.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = displacement[0].astype(np.float32), displacement[1].astype(np.float32)
    uy, ux = -dy, -dx
    for _ in range(iterations):
        map_x, map_y = xx + ux, yy + uy
        uy = -cv2.remap(dy, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ux = -cv2.remap(dx, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.stack([uy, ux]).astype(np.float32)


def make_fold_example(stack: FoldStack, z: int, rng: np.random.Generator, crop: int,
                      params: FoldParams | None = None, flip: bool = False) -> FoldExample:
    """Fold a random ``crop`` x ``crop`` window of section ``z`` (uint8 data scaled to [0, 1])."""
    vol, s = stack.volume, stack.spec.step
    _, h, w = vol.shape
    if crop > min(h, w):
        raise ValueError(f"crop {crop} is larger than {stack.spec.name}'s sections ({h}x{w})")
    y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    window = vol[z - s:z + s + 1:s, y0:y0 + crop, x0:x0 + crop]
    if flip:
        k = int(rng.integers(0, 4))
        window = np.rot90(window, k, axes=(1, 2))
        if rng.random() < 0.5:
            window = window[::-1]
    left, clean, right = (np.ascontiguousarray(x) for x in window)
    fold = simulate_fold(clean, rng, params)
    scale = np.float32(1.0 / 255.0)
    return FoldExample(
        folded=fold.image.astype(np.float32) * scale, left=left.astype(np.float32) * scale,
        right=right.astype(np.float32) * scale, clean=clean.astype(np.float32) * scale,
        band=fold.band_mask, displacement=fold.displacement,
        inverse=inverse_displacement(fold.displacement),
    )
