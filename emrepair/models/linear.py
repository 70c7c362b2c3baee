"""The linear baseline: a per-pixel cross-fade between the two neighbouring sections."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emrepair.models.base import InterpolationModel, linear_blend


@dataclass
class LinearConfig:
    """The linear baseline has no settings."""


class LinearModel(InterpolationModel):
    """``(1 - t) a + t b``: no weights, no context, any size."""

    name = "linear"
    halo = 0
    size_multiple = 1

    def __init__(self, config: LinearConfig | None = None) -> None:
        super().__init__()
        self.config = config or LinearConfig()

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The t-weighted average of a and b."""
        return linear_blend(a, b, t)
