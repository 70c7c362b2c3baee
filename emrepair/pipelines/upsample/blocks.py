"""Blocks of an upsample-z run: output z-ranges that start at an original section and own whole chunk slabs.

A cut at output z = c is allowed where c is a multiple of both the factor (so it falls on an original section,
and every pair's synthesized sections stay in one block) and the output chunk depth (so blocks written by
different processes never share a chunk): cuts at multiples of lcm(factor, chunk depth). The cut depends only
on the depth, the factor and the chunk depth, never on the number of shares or workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emrepair.pipelines.upsample.factor import output_depth


@dataclass(frozen=True)
class UpsampleBlock:
    """Output sections ``start..stop-1`` of a z upsampling by ``factor`` of a ``depth``-section input."""

    start: int
    stop: int
    factor: int
    depth: int

    @property
    def originals(self) -> range:
        """Input z of the original sections that land in this block (at output z = factor * z)."""
        return range(self.start // self.factor, (self.stop - 1) // self.factor + 1)

    @property
    def pairs(self) -> range:
        """Input z of the first section of every pair whose synthesized sections lie in this block."""
        return range(self.originals.start, min(self.originals.stop, self.depth - 1))

    @property
    def needed(self) -> range:
        """Input sections the block reads (its originals and the right end of its last pair)."""
        return range(self.originals.start, min(self.originals.stop + 1, self.depth))


def plan_upsample_blocks(depth: int, factor: int, chunk_z: int) -> list[UpsampleBlock]:
    """Cut the ``(depth - 1) * factor + 1`` output sections at multiples of lcm(factor, chunk_z)."""
    if depth < 2 or factor < 2 or chunk_z < 1:
        raise ValueError(f"need depth >= 2, factor >= 2 and chunk_z >= 1, got {depth}, {factor}, {chunk_z}")
    total = output_depth(depth, factor)
    step = math.lcm(factor, chunk_z)
    edges = list(range(0, total, step)) + [total]
    return [UpsampleBlock(a, b, factor, depth) for a, b in zip(edges[:-1], edges[1:])]
