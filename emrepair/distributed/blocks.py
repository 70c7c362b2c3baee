"""Blocks: the units of work of a repair, chunk-aligned runs of sections that can be written independently."""

from __future__ import annotations

from dataclasses import dataclass

from emrepair.distributed.plan import RepairRun


@dataclass(frozen=True)
class Block:
    """Sections ``start..stop-1``; ``runs`` are the repair runs that touch them (each lies wholly inside)."""

    start: int
    stop: int
    runs: tuple[RepairRun, ...] = ()

    @property
    def synthesized(self) -> int:
        """How many sections of the block are synthesized."""
        return sum(len(run.sections) for run in self.runs)


def plan_blocks(runs: list[RepairRun], depth: int, chunk_z: int) -> list[Block]:
    """Cut ``depth`` sections into blocks at multiples of ``chunk_z``, never inside a repair run.

    Blocks then own whole z-slabs of output chunks, so blocks written by different processes never share a chunk,
    and each run's neighbours are read once. The cut depends only on the plan and the chunk depth, not on the
    number of workers or shares, so every way of running gives the same computation per block.
    """
    if depth < 1 or chunk_z < 1:
        raise ValueError(f"need depth >= 1 and chunk_z >= 1, got {depth} and {chunk_z}")
    cuts = set(range(0, depth, chunk_z)) | {depth}
    for run in runs:
        cuts -= {c for c in cuts if run.first < c <= run.last}
    edges = sorted(cuts)
    blocks = []
    for start, stop in zip(edges[:-1], edges[1:]):
        inside = tuple(run for run in runs if start <= run.first and run.last < stop)
        blocks.append(Block(start, stop, inside))
    return blocks


def slabs_of(block: Block, chunk_z: int) -> list[tuple[int, int]]:
    """The chunk-aligned (start, stop) z-slabs of a block, written one at a time to bound memory."""
    edges = sorted({block.start, block.stop} | set(range(block.start - block.start % chunk_z + chunk_z,
                                                             block.stop, chunk_z)))
    return list(zip(edges[:-1], edges[1:]))
