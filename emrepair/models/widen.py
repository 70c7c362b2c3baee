"""Growing a trained :class:`SmallUNet` into a wider one that computes exactly the same function.

Used to give a saturated model more capacity without throwing its training away: every new output channel of a
convolution gets a fresh (default) initialisation, and every weight that reads a new channel starts at zero, so
the widened network's output equals the original's until training moves those zeros. Without normalisation
layers in SmallUNet, nothing else depends on the channel count.
"""

from __future__ import annotations

import torch
from torch import nn

from emrepair.models.small_unet import SmallUNet


def _widened_conv(old: nn.Conv2d, new: nn.Conv2d, in_map: list[int]) -> None:
    """Copy ``old`` into ``new`` in place: old output channel o -> new o, old input channel i -> in_map[i]; the
    weights that read channels no old one maps to are zeroed (new output rows keep their fresh values)."""
    with torch.no_grad():
        index = torch.tensor(in_map, dtype=torch.long)
        mapped = torch.zeros(new.weight.shape[1], dtype=torch.bool)
        mapped[index] = True
        new.weight[:, ~mapped] = 0.0
        new.weight[:old.out_channels].index_copy_(1, index, old.weight)
        new.bias[:old.out_channels] = old.bias


def widen_unet(old: SmallUNet, widths: tuple[int, ...]) -> SmallUNet:
    """A SmallUNet of ``widths`` (same depth, each at least the old width) whose output equals ``old``'s.

    Raises:
        ValueError: a different number of levels, or a level narrower than before.
    """
    old_widths = tuple(block[0].out_channels for block in old.down)
    if len(widths) != len(old_widths) or any(n < o for n, o in zip(widths, old_widths)):
        raise ValueError(f"widths {tuple(widths)} must have {len(old_widths)} levels, each at least {old_widths}")
    out_channels = old.head.out_channels
    new = SmallUNet(old.in_channels, out_channels, tuple(widths))
    previous = list(range(old.in_channels))  # where each old input channel sits in the new input
    for old_block, new_block, width in zip(old.down, new.down, old_widths):
        _widened_conv(old_block[0], new_block[0], previous)
        _widened_conv(old_block[2], new_block[2], list(range(width)))
        previous = list(range(width))
    levels = len(widths)
    for k, (old_block, new_block) in enumerate(zip(old.up, new.up)):
        level = levels - 2 - k  # this decoder block outputs level ``level``: cat(upsampled level + 1, skip)
        in_map = list(range(old_widths[level + 1])) + [widths[level + 1] + i for i in range(old_widths[level])]
        _widened_conv(old_block[0], new_block[0], in_map)
        _widened_conv(old_block[2], new_block[2], list(range(old_widths[level])))
    with torch.no_grad():
        new.head.weight.zero_()
        new.head.weight[:, :old_widths[0]] = old.head.weight
        new.head.bias.copy_(old.head.bias)
    return new
