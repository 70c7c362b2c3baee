"""Self-supervised triplets from good sections: (a, b, target at t) crops with augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emrepair.training.stacks import TrainingStack

MAX_GAP = 3                 # runs of 1-3 missing sections
ISO_DECIMATION = (1, 5)     # isotropic stacks: neighbours 1-5 sections apart per gap step (d = 1: upsample-z)
VAL_ISO_DECIMATION = 4      # 10 nm FIB-SEM validated as 40 nm serial sections
JITTER_CONTRAST = (0.8, 1.25)
JITTER_BRIGHTNESS = 0.08


@dataclass(frozen=True)
class Triplet:
    """Sections ``a`` and ``b`` of one stack with ``target`` between them at position ``t``."""

    stack: int
    a: int
    b: int
    target: int
    t: float


def triplet_options(stack: TrainingStack) -> list[tuple[int, int]]:
    """Every (decimation d, gap k) this stack can yield with its training sections."""
    decimations = range(ISO_DECIMATION[0], ISO_DECIMATION[1] + 1) if stack.isotropic else (1,)
    return [(d, k) for d in decimations for k in range(1, MAX_GAP + 1) if d * (k + 1) < stack.shape[0]]


def draw_triplet(stacks: list[TrainingStack], rng: np.random.Generator, attempts: int = 200) -> Triplet:
    """A random training triplet: a, b = a + d (k + 1), target = a + d j (1 <= j <= k), t = j / (k + 1),
    with a, b and the target all training sections.

    Raises:
        ValueError: when no such triplet was found (too few training sections).
    """
    weights = np.array([len(s.train_z) for s in stacks], dtype=np.float64)
    if weights.sum() == 0:
        raise ValueError("no training sections")
    for _ in range(attempts):
        index = int(rng.choice(len(stacks), p=weights / weights.sum()))
        stack = stacks[index]
        options = triplet_options(stack)
        if not options or not stack.train_z:
            continue
        d, k = options[int(rng.integers(len(options)))]
        allowed = set(stack.train_z)
        a = int(rng.choice(stack.train_z))
        b = a + d * (k + 1)
        j = int(rng.integers(1, k + 1))
        target = a + d * j
        if b in allowed and target in allowed:
            return Triplet(index, a, b, target, j / (k + 1))
    raise ValueError("could not draw a training triplet: too few consecutive good training sections")


def validation_triplets(stacks: list[TrainingStack]) -> list[Triplet]:
    """One triplet per held-out section: neighbours 1 (or, isotropic, 4) sections away, t = 0.5."""
    out = []
    for index, stack in enumerate(stacks):
        d = VAL_ISO_DECIMATION if stack.isotropic else 1
        for z in stack.val_z:
            if z - d >= 0 and z + d < stack.shape[0]:
                out.append(Triplet(index, z - d, z + d, z, 0.5))
    return out


def pad_to(part: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad a crop to size x size where the section was smaller than the crop."""
    pad_y, pad_x = size - part.shape[0], size - part.shape[1]
    if pad_y or pad_x:
        part = np.pad(part, ((0, pad_y), (0, pad_x)), mode="reflect")
    return part


class TripletSampler:
    """Draws augmented training batches: crops, flips, rot90, swapped order (t -> 1 - t), intensity jitter."""

    def __init__(self, stacks: list[TrainingStack], patch_size: int, seed: int = 0, augment: bool = True) -> None:
        self.stacks = stacks
        self.patch_size = patch_size
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """One (a, b, target) crop triple of (P, P) float32 in [0, 1] and its t."""
        tri = draw_triplet(self.stacks, self.rng)
        stack = self.stacks[tri.stack]
        height, width = stack.shape[1:]
        p = self.patch_size
        y = int(self.rng.integers(0, max(0, height - p) + 1))
        x = int(self.rng.integers(0, max(0, width - p) + 1))
        images = [pad_to(stack.region(z, y, x, p), p) for z in (tri.a, tri.b, tri.target)]
        t = tri.t
        if self.augment:
            images, t = self._augment(images, t)
        a, b, target = images
        return a, b, target, t

    def _augment(self, images: list[np.ndarray], t: float) -> tuple[list[np.ndarray], float]:
        rng = self.rng
        if rng.random() < 0.5:
            images = [im[:, ::-1] for im in images]
        if rng.random() < 0.5:
            images = [im[::-1, :] for im in images]
        turns = int(rng.integers(4))
        images = [np.rot90(im, turns) for im in images]
        if rng.random() < 0.5:
            images = [images[1], images[0], images[2]]
            t = 1.0 - t
        contrast = float(rng.uniform(*JITTER_CONTRAST))
        brightness = float(rng.uniform(-JITTER_BRIGHTNESS, JITTER_BRIGHTNESS))
        images = [np.clip((im - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0).astype(np.float32)
                  for im in images]
        return images, t

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``size`` samples stacked: a, b, target (B, 1, P, P) float32 and t (B,) float32."""
        samples = [self.sample() for _ in range(size)]
        a, b, target = (np.stack([np.ascontiguousarray(s[i]) for s in samples])[:, None] for i in range(3))
        t = np.array([s[3] for s in samples], dtype=np.float32)
        return a, b, target, t
