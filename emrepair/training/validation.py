"""Validation during training: the model against linear on held-out sections, through the inference engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from emrepair.engine.metrics import psnr, ssim
from emrepair.training.sampling import Triplet
from emrepair.training.stacks import TrainingStack

VAL_CROP = 256   # centre crop side of each held-out section (keeps validation quick on the CPU)
MAX_VAL = 16     # held-out triplets scored, spread evenly over all of them


@dataclass(frozen=True)
class ValidationMetrics:
    """Mean PSNR (dB) and SSIM of the model and of linear interpolation on the same held-out crops."""

    psnr: float
    ssim: float
    linear_psnr: float
    linear_ssim: float
    sections: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in checkpoint meta)."""
        return {"val_psnr": round(self.psnr, 4), "val_ssim": round(self.ssim, 4),
                "linear_psnr": round(self.linear_psnr, 4), "linear_ssim": round(self.linear_ssim, 4),
                "val_sections": self.sections}


class Scores:
    """PSNR and SSIM of the model and of linear interpolation, one of each per scored section."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {"p": [], "s": [], "lp": [], "ls": []}

    def add(self, pred: np.ndarray, linear: np.ndarray, truth: np.ndarray) -> None:
        """Score one section's prediction and its linear interpolation against the truth."""
        self.values["p"].append(psnr(pred, truth))
        self.values["s"].append(ssim(pred, truth))
        self.values["lp"].append(psnr(linear, truth))
        self.values["ls"].append(ssim(linear, truth))

    def metrics(self) -> ValidationMetrics:
        """The means (NaN when nothing was scored) over the sections scored."""
        mean = {k: float(np.mean(v)) if v else float("nan") for k, v in self.values.items()}
        return ValidationMetrics(mean["p"], mean["s"], mean["lp"], mean["ls"], len(self.values["p"]))


def pick_validation(triplets: list[Triplet], limit: int = MAX_VAL) -> list[Triplet]:
    """At most ``limit`` triplets, evenly spread (deterministic)."""
    if len(triplets) <= limit:
        return list(triplets)
    index = np.linspace(0, len(triplets) - 1, limit).round().astype(int)
    return [triplets[i] for i in index]


def centre(image: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size part of an image (the whole image when smaller)."""
    h, w = image.shape
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[y:y + size, x:x + size]


def validate(model: nn.Module, stacks: list[TrainingStack], triplets: list[Triplet], device: str,
             crop: int = VAL_CROP) -> ValidationMetrics:
    """Score ``model`` and linear interpolation on the centre crops of ``triplets``; restores train mode."""
    from emrepair.engine import EngineConfig, TiledInterpolator

    was_training = model.training
    engine = TiledInterpolator(model, EngineConfig(device=device, batch_size=4, precision="fp32"))
    scores = Scores()
    try:
        for tri in triplets:
            stack = stacks[tri.stack]
            a, b, truth = (centre(stack.section(z), crop) for z in (tri.a, tri.b, tri.target))
            pred = engine.interpolate(a, b, [tri.t])[0]
            scores.add(pred, ((1.0 - tri.t) * a + tri.t * b).astype(np.float32), truth)
    finally:
        model.train(was_training)
    return scores.metrics()
