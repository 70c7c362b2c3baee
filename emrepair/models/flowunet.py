"""FlowUNet: classical optical flow for the motion, a learned U-Net for the blend and the residual.

Ours, not from one of the papers: built because the attention networks learn slowly where only a CPU
is available. Both neighbours are first warped to position t with OpenCV's DIS flow (as the ``flow``
baseline does); a U-Net sees a, b, the two warped sections and t, and predicts a per-pixel blend
weight between the warped sections (offset by logit(1 - t)) and an additive residual. A freshly
initialised network therefore reproduces the ``flow`` baseline, and training only has to learn what
flow misses: occlusions, flow errors, and the smoothing that the noise of a missing section calls for.
The flow estimate carries no gradient; the U-Net's receptive field (about 140 px at four levels) lets
it use wide context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emrepair.models.attention_net import mask_prior
from emrepair.models.base import InterpolationModel
from emrepair.models.flow import FLOW_METHODS, batch_flow_warps
from emrepair.models.small_unet import SmallUNet


@dataclass
class FlowUNetConfig:
    """Settings of :class:`FlowUNetModel`.

    Attributes:
        widths: U-Net channels per level (each level halves the resolution).
        flow_method: "dis", "dis-smooth" or "farneback" (see ``emrepair.models.flow``).
        halo: context pixels the tiler should add each side (largest motion plus receptive field).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    flow_method: str = "dis"
    halo: int = 64

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive channel counts, got {self.widths}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"flow_method must be one of {FLOW_METHODS}, got {self.flow_method!r}")
        if self.halo < 0:
            raise ValueError(f"halo must be >= 0, got {self.halo}")


class FlowUNetModel(InterpolationModel):
    """Flow-warped neighbours fused by a U-Net; ``forward(a, b, t)`` as in :class:`InterpolationModel`."""

    name = "flowunet"

    def __init__(self, config: FlowUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or FlowUNetConfig()
        # inputs: a, b, a warped to t, b warped to t, t; outputs: blend logit offset, residual
        self.unet = SmallUNet(5, 2, self.config.widths)
        self.size_multiple = self.unet.size_multiple

    @property
    def halo(self) -> int:  # type: ignore[override]
        """Context the tiler should add each side, from the config."""
        return self.config.halo

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Warp both neighbours to t, then blend them and add a residual, both predicted by the U-Net."""
        from_a, from_b = batch_flow_warps(a, b, t, self.config.flow_method)
        t_map = t.view(-1, 1, 1, 1).expand_as(a)
        out = self.unet(torch.cat([a, b, from_a, from_b, t_map], dim=1))
        weight = torch.sigmoid(mask_prior(t) + out[:, :1])
        # tanh bounds the residual to the image range: an unbounded one let Adam blow a CPU run up at step ~1470
        return weight * from_a + (1.0 - weight) * from_b + torch.tanh(out[:, 1:])
