"""Two-level sparse self-attention (the SSAN attention-aware layer, DAN's deformation-aware layer).

A dense attention over all N positions is replaced by passes over small groups: a long-range pass
over interlaced groups (positions sharing the same offset inside P x P blocks, i.e. spaced P apart)
followed by a short-range pass inside each P x P block. The long-range pass is itself decomposed
once more the same way with block P' (the paper's "two-level decomposition"), so the three passes
are: long-long, long-short, short. Each pass is a SAGAN-style attention with its own weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_shape


class GroupSelfAttention(nn.Module):
    """SAGAN self-attention inside each group of tokens: ``y = gamma * Wv(attn(Wf x, Wg x, Wh x)) + x``.

    Query and key have C / ``qk_reduction`` channels, the value C / 2; the logits are scaled by
    1 / sqrt(C / 2) as in the paper; gamma starts at 0 so the layer starts as the identity.
    """

    def __init__(self, channels: int, qk_reduction: int = 8) -> None:
        super().__init__()
        qk = max(1, channels // qk_reduction)
        self.query = nn.Linear(channels, qk)
        self.key = nn.Linear(channels, qk)
        self.value = nn.Linear(channels, channels // 2)
        self.out = nn.Linear(channels // 2, channels)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.scale = 1.0 / math.sqrt(channels / 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (G, N, C), G independent groups of N positions -> (G, N, C)."""
        check_shape(tokens, "G,N,C", "tokens")
        q = self.query(tokens)[:, None]
        k = self.key(tokens)[:, None]
        v = self.value(tokens)[:, None]
        z = F.scaled_dot_product_attention(q, k, v, scale=self.scale)[:, 0]
        return tokens + self.gamma * self.out(z)


def blocks_to_tokens(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * H/p * W/p, p*p, C): one group per p x p block."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * (h // p) * (w // p), p * p, c)


def tokens_to_blocks(tokens: torch.Tensor, shape: torch.Size, p: int) -> torch.Tensor:
    """Inverse of :func:`blocks_to_tokens`."""
    b, c, h, w = shape
    x = tokens.view(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)


def interlace(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * p*p, C, H/p, W/p): each output image holds the positions of one offset mod p."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b * p * p, c, h // p, w // p)


def deinterlace(x: torch.Tensor, shape: torch.Size, p: int) -> torch.Tensor:
    """Inverse of :func:`interlace`."""
    b, c, h, w = shape
    x = x.view(b, p, p, c, h // p, w // p).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c, h, w)


def full_group_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C): one group holding every position."""
    return x.flatten(2).transpose(1, 2)


class SparseSelfAttention2d(nn.Module):
    """Interlaced long-range then short-range attention with block sizes ``block`` and ``inner_block``.

    H and W of the input must be multiples of ``block * inner_block``.
    """

    def __init__(self, channels: int, block: int, inner_block: int, qk_reduction: int = 8) -> None:
        super().__init__()
        self.block = block
        self.inner_block = inner_block
        self.long_long = GroupSelfAttention(channels, qk_reduction)
        self.long_short = GroupSelfAttention(channels, qk_reduction)
        self.short = GroupSelfAttention(channels, qk_reduction)

    @property
    def multiple(self) -> int:
        """H and W of the feature map must be multiples of this."""
        return self.block * self.inner_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        dims = check_shape(x, "B,C,H,W", "attention input")
        if dims["H"] % self.multiple or dims["W"] % self.multiple:
            raise ValueError(
                f"attention input H and W must be multiples of {self.multiple}, got {dims['H']}x{dims['W']}"
            )
        p, q = self.block, self.inner_block
        # Level 1, long range: positions spaced p apart, each set attended by level 2.
        grids = interlace(x, p)
        # Level 2 inside each interlaced grid: its own long range (spacing q), then its q x q blocks.
        sub = interlace(grids, q)
        sub_tokens = self.long_long(full_group_tokens(sub))
        sub = sub_tokens.transpose(1, 2).reshape(sub.shape)
        grids = deinterlace(sub, grids.shape, q)
        grids = tokens_to_blocks(self.long_short(blocks_to_tokens(grids, q)), grids.shape, q)
        x = deinterlace(grids, x.shape, p)
        # Level 1, short range: inside each p x p block.
        return tokens_to_blocks(self.short(blocks_to_tokens(x, p)), x.shape, p)
