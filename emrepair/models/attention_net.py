"""The body SSAN and DAN share: siamese RDN encoder, t-conditioned pair fusion, sparse attention.

Both papers describe the same front end (siamese residual dense network, then a two-level sparse
self-attention layer); they differ in how the attended features become the output (see ssan.py and
dan.py). Our additions: strided convs before the RDN so attention runs at 1/``downsample``
resolution, and FiLM conditioning on t so any t in (0, 1) can be asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emrepair.models.base import InterpolationModel
from emrepair.models.rdn import SiameseRDN, TimeFiLM
from emrepair.models.sparse_attention import SparseSelfAttention2d


@dataclass
class AttentionConfig:
    """Widths, depths and attention layout shared by SSAN and DAN.

    Attributes:
        base_channels: width of the full-resolution shallow features and decoder.
        channels: width C of the features at 1/``downsample`` resolution (attention input).
        downsample: 1, 2, 4 or 8; the resolution reduction before the RDN and attention.
        rdb_blocks: number of residual dense blocks.
        rdb_layers: conv layers per residual dense block.
        growth: growth rate G of each dense layer.
        block: P, the level-1 block size (short range) at feature resolution.
        inner_block: P', the level-2 block size inside each interlaced long-range group.
        qk_reduction: query/key width is C / qk_reduction (8 as in SAGAN).
        halo: pixels of context the tiler should add on each side of a tile.
    """

    base_channels: int = 16
    channels: int = 48
    downsample: int = 4
    rdb_blocks: int = 3
    rdb_layers: int = 4
    growth: int = 16
    block: int = 8
    inner_block: int = 4
    qk_reduction: int = 8
    halo: int = 32

    def __post_init__(self) -> None:
        if self.downsample not in (1, 2, 4, 8):
            raise ValueError(f"downsample must be 1, 2, 4 or 8, got {self.downsample}")
        if self.channels % 2 or self.channels < self.qk_reduction:
            raise ValueError(f"channels must be even and >= qk_reduction, got {self.channels}")
        for label in ("base_channels", "rdb_blocks", "rdb_layers", "growth", "block", "inner_block"):
            if getattr(self, label) < 1:
                raise ValueError(f"{label} must be >= 1, got {getattr(self, label)}")
        if self.halo < 0:
            raise ValueError(f"halo must be >= 0, got {self.halo}")

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this so every attention group divides evenly."""
        return self.downsample * self.block * self.inner_block


def mask_prior(t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """logit(1 - t) as (B, 1, 1, 1): the mask logit that makes the fusion the linear blend.

    Computed in float32 (bf16 rounds 1 - eps to 1) and returned in t's dtype.
    """
    keep_a = (1.0 - t.float()).clamp(eps, 1.0 - eps)
    return torch.logit(keep_a).view(-1, 1, 1, 1).to(t.dtype)


def scale_last_conv(layer: nn.Conv2d, std: float) -> None:
    """Initialise an output layer small, so the network starts close to the linear blend."""
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)


class AttentionInterpolator(InterpolationModel):
    """Shared body; subclasses turn the attended features into the output section."""

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = SiameseRDN(c.base_channels, c.channels, c.downsample, c.rdb_blocks,
                                  c.rdb_layers, c.growth)
        self.pair_fusion = nn.Conv2d(2 * c.channels, c.channels, 1)
        self.film = TimeFiLM(c.channels)
        self.attention = SparseSelfAttention2d(c.channels, c.block, c.inner_block, c.qk_reduction)

    @property
    def halo(self) -> int:  # type: ignore[override]
        """Context the tiler should add each side, from the config."""
        return self.config.halo

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        """H and W must be multiples of downsample * block * inner_block."""
        return self.config.size_multiple

    def attended_features(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode both sections and attend, once from each side.

        Returns ``(skips, feats)`` with 2B rows each: rows [0, B) look from a towards t (the a side,
        conditioned on t), rows [B, 2B) from b (conditioned on 1 - t, with the pair order swapped,
        so the two sides share weights).
        """
        n = a.shape[0]
        skips, feats = self.encoder(torch.cat([a, b], dim=0))
        fa, fb = feats[:n], feats[n:]
        pairs = torch.cat([torch.cat([fa, fb], dim=1), torch.cat([fb, fa], dim=1)], dim=0)
        x = self.film(self.pair_fusion(pairs), torch.cat([t, 1.0 - t], dim=0))
        return skips, self.attention(x)
