"""The tile grid over a section: overlapping tiles that cover it, the last one snapped to the edge."""

from __future__ import annotations

from dataclasses import dataclass

from emrepair.errors import UsageError


@dataclass(frozen=True)
class Tile:
    """One tile of a section, in section pixel coordinates.

    Attributes:
        y0, x0: top-left corner.
        height, width: size inside the section (smaller than the tile size only when the section is).
        iy, ix: row and column of the tile in the grid (used to look up its blend weights).
    """

    y0: int
    x0: int
    height: int
    width: int
    iy: int
    ix: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """The (y, x) slices of the section this tile covers."""
        return slice(self.y0, self.y0 + self.height), slice(self.x0, self.x0 + self.width)


def axis_starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Start positions of tiles along one axis of ``length`` pixels.

    Tiles advance by ``tile_size - overlap``; the last one is snapped so that it ends exactly at the
    edge (it then overlaps its neighbour by more). An axis no longer than a tile gets one tile at 0.
    """
    _check_sizes(tile_size, overlap)
    if length < 1:
        raise ValueError(f"axis length must be positive, got {length}")
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    starts = list(range(0, length - tile_size, stride))
    starts.append(length - tile_size)
    return starts


def plan_tiles(shape: tuple[int, int], tile_size: int, overlap: int) -> list[Tile]:
    """The tiles covering a section of ``shape`` (height, width), row by row.

    Every tile has the same size, min(tile_size, axis length) along each axis, so tiles can be
    stacked into one batch.

    Raises:
        UsageError: tile_size < 1 or overlap outside [0, tile_size).
        ValueError: shape is not two positive sizes.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {shape}")
    height, width = int(shape[0]), int(shape[1])
    ys = axis_starts(height, tile_size, overlap)
    xs = axis_starts(width, tile_size, overlap)
    tile_h, tile_w = min(tile_size, height), min(tile_size, width)
    return [Tile(y0=y0, x0=x0, height=tile_h, width=tile_w, iy=iy, ix=ix)
            for iy, y0 in enumerate(ys) for ix, x0 in enumerate(xs)]


def auto_overlap(tile_size: int, halo: int) -> int:
    """The default overlap: twice the halo plus a blending band, and at least tile_size // 8.

    Each tile's predictions within ``halo`` of an inner edge lack context and get zero weight, so
    neighbours must overlap by at least 2 * halo; the extra tile_size // 16 is where blending happens.
    """
    overlap = max(tile_size // 8, 2 * halo + tile_size // 16)
    overlap += overlap % 2
    return min(overlap, max(tile_size - 1, 0))


def _check_sizes(tile_size: int, overlap: int) -> None:
    if tile_size < 1:
        raise UsageError(f"tile size must be at least 1 pixel, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise UsageError(f"overlap must be in [0, tile size {tile_size}), got {overlap}")
