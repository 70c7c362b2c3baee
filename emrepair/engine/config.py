"""The engine's settings: tile size, overlap, blending, batching, device and precision."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emrepair.engine.blending import BLEND_MODES
from emrepair.engine.device import PRECISIONS
from emrepair.errors import UsageError


@dataclass(frozen=True)
class EngineConfig:
    """How ``TiledInterpolator`` cuts, batches and blends a section.

    Attributes:
        tile_size: tile side in pixels, or None to choose it from free GPU memory (CUDA) or use
            512 (CPU). Tiles larger than the section shrink to the section.
        overlap: pixels shared by neighbouring tiles, or None for
            max(tile_size // 8, 2 * halo + tile_size // 16) (see ``auto_overlap``).
        blend: "gaussian", "hann" or "crop" (see ``emrepair.engine.blending``).
        batch_size: model inputs per forward pass; each (tile, t) pair is one input.
        device: "auto", "cpu", "cuda" or "cuda:N" (see ``resolve_device``).
        precision: "auto", "fp32", "bf16" or "fp16" (see ``resolve_precision``); CPU is always fp32.
    """

    tile_size: int | None = None
    overlap: int | None = None
    blend: str = "gaussian"
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.tile_size is not None and (not _is_int(self.tile_size) or self.tile_size < 8):
            raise UsageError(f"tile size must be an integer of at least 8 pixels, got {self.tile_size!r}")
        if self.overlap is not None and (not _is_int(self.overlap) or self.overlap < 0):
            raise UsageError(f"overlap must be a non-negative integer, got {self.overlap!r}")
        if self.tile_size is not None and self.overlap is not None and self.overlap >= self.tile_size:
            raise UsageError(f"overlap {self.overlap} must be smaller than the tile size {self.tile_size}")
        if self.blend not in BLEND_MODES:
            raise UsageError(f"unknown blend mode {self.blend!r}; use one of {', '.join(BLEND_MODES)}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise UsageError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (for provenance)."""
        return asdict(self)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
