"""Options shared by the pipelines that run the tiled engine (fix, upsample-z)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EngineOptions:
    """How sections go through the network: tiles, blending, batching, device and precision.

    Field meanings are those of :class:`emrepair.engine.EngineConfig`.
    """

    tile_size: int | None = None
    overlap: int | None = None
    blend: str = "gaussian"
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"

    def engine_config(self, device: str | None = None) -> Any:
        """The :class:`~emrepair.engine.EngineConfig` for these options (``device`` overrides the spec)."""
        from emrepair.engine import EngineConfig

        return EngineConfig(tile_size=self.tile_size, overlap=self.overlap, blend=self.blend,
                            batch_size=self.batch_size, device=device or self.device, precision=self.precision)


@dataclass(kw_only=True)
class BlockProgress:
    """How far a blockwise run got: blocks in the run, skipped as already done, left to other shares."""

    blocks_total: int = 0
    blocks_skipped: int = 0
    blocks_left: int = 0
    complete: bool = True

    def blocks_dict(self) -> dict[str, Any]:
        """The JSON form used in run reports."""
        return {"total": self.blocks_total, "skipped_as_done": self.blocks_skipped, "left": self.blocks_left}
