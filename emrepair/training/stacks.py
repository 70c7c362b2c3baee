"""The user's own stacks as training material: sections in [0, 1], split into training and held-out sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.engine.intensity import IntensityMap
from emrepair.errors import InputError

PRELOAD_LIMIT_BYTES = 2 * 2**30
VAL_EVERY = 5  # every 5th section (z % 5 == 2) is held out for validation
ISOTROPY_TOLERANCE = 0.25


@dataclass
class TrainingStack:
    """One volume to learn from.

    Attributes:
        path: the file the sections come from.
        shape: (z, y, x).
        voxel_size: (z, y, x) in nm, or None.
        isotropic: whether neighbours are decimated to mimic serial sections (FIB-SEM).
        train_z: sections that may be used as inputs or targets of training triplets.
        val_z: held-out sections (never used in training).
        mapping: the map from stored values to [0, 1].
    """

    path: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None
    isotropic: bool
    train_z: list[int]
    val_z: list[int]
    mapping: IntensityMap
    _sections: np.ndarray | None = field(default=None, repr=False)
    _volume: Any = field(default=None, repr=False)

    def section(self, z: int) -> np.ndarray:
        """Section ``z`` as float32 (H, W) in [0, 1]."""
        raw = self._sections[z] if self._sections is not None else self._volume.read_section(z)
        return self.mapping.to_unit(raw)

    def region(self, z: int, y: int, x: int, size: int) -> np.ndarray:
        """Float32 [0, 1] pixels of section ``z`` in [y, y + size) x [x, x + size) (clipped at the edges)."""
        if self._sections is not None:
            raw = self._sections[z, y:y + size, x:x + size]
        else:
            raw = self._volume.read_region(slice(z, z + 1), slice(y, y + size), slice(x, x + size))[0]
        return self.mapping.to_unit(raw)

    @property
    def preloaded(self) -> bool:
        """Whether the whole stack is held in memory."""
        return self._sections is not None

    def describe(self) -> dict[str, Any]:
        """What a checkpoint's meta records about this stack (``train_z``: the sections it trained on, which
        ``emrepair eval`` checks its dropped sections against)."""
        return {"file": Path(self.path).name, "shape": list(self.shape),
                "voxel_size": [float(v) for v in self.voxel_size] if self.voxel_size else None, "isotropic": self.isotropic,
                "train_sections": len(self.train_z), "val_sections": self.val_z, "train_z": list(self.train_z)}

    def close(self) -> None:
        """Release the file handle of a lazily read stack."""
        if self._volume is not None:
            self._volume.close()
            self._volume = None


def is_isotropic(voxel_size: tuple[float, float, float] | None) -> bool:
    """True when z spacing is within 25 % of the y pixel size (FIB-SEM-like); False when unknown."""
    if voxel_size is None or not all(np.isfinite(v) and v > 0 for v in voxel_size[:2]):
        return False
    return abs(voxel_size[0] - voxel_size[1]) <= ISOTROPY_TOLERANCE * voxel_size[1]


def is_held_out(z: int) -> bool:
    """The validation rule of every training run: section z is held out when z % VAL_EVERY == VAL_EVERY // 2."""
    return z % VAL_EVERY == VAL_EVERY // 2


def split_sections(depth: int, good: list[int], role: str) -> tuple[list[int], list[int]]:
    """(train, val) section lists. ``role`` "both": every ``VAL_EVERY``-th good section is held out;
    "val": all are held out (a stack given with --val); "train": none are (validation comes from --val)."""
    if role not in ("both", "train", "val"):
        raise ValueError(f"role must be both, train or val, got {role!r}")
    if role == "val":
        return [], list(good)
    if role == "train":
        return list(good), []
    val = [z for z in good if is_held_out(z) and 0 < z < depth - 1]
    return [z for z in good if z not in set(val)], val


def open_training_stack(path: str, *, isotropic: bool | None = None, role: str = "both",
                        detect: bool = True) -> TrainingStack:
    """Open ``path`` for training; preload it when under 2 GiB, else read sections lazily.

    Args:
        isotropic: force (True) or forbid (False) decimated triplets; None decides from the voxel size.
        role: "both" (hold out every 5th good section), "train" (hold out none) or "val" (hold out all).
        detect: leave out sections the detector calls defective.

    Raises:
        InputError: the stack has fewer than 3 good sections.
    """
    from emrepair.io import open_volume

    vol = open_volume(path)
    depth = vol.shape[0]
    bad: set[int] = set()
    if detect:
        from emrepair.detection import detect_volume

        bad = set(detect_volume(vol).defective_z())
    good = [z for z in range(depth) if z not in bad]
    if len(good) < 3:
        vol.close()
        raise InputError(f"{path}: needs at least 3 good sections to train on, has {len(good)}")
    sample = [vol.read_section(z) for z in good[:: max(1, len(good) // 16)]]
    mapping = IntensityMap.for_sections(sample)
    voxel_size = vol.info.voxel_size
    iso = is_isotropic(voxel_size) if isotropic is None else isotropic
    train_z, val_z = split_sections(depth, good, role)
    nbytes = int(np.prod(vol.shape)) * np.dtype(vol.dtype).itemsize
    stack = TrainingStack(path=str(path), shape=tuple(vol.shape), voxel_size=voxel_size, isotropic=iso,
                          train_z=train_z, val_z=val_z, mapping=mapping)
    if nbytes < PRELOAD_LIMIT_BYTES:
        stack._sections = vol.read_region(slice(0, depth), slice(0, vol.shape[1]), slice(0, vol.shape[2]))
        vol.close()
    else:
        stack._volume = vol
    return stack
