"""Tiled, batched, blended inference of every model kind on a device (one ``TiledAggregator``); knows nothing of files."""

from emrepair.engine.aggregator import TiledAggregator
from emrepair.engine.blending import BLEND_MODES
from emrepair.engine.config import EngineConfig
from emrepair.engine.device import PRECISIONS, resolve_device, resolve_precision
from emrepair.engine.interpolator import TiledInterpolator
from emrepair.engine.memory import estimate_memory
from emrepair.engine.tiling import Tile, auto_overlap, plan_tiles

__all__ = [
    "BLEND_MODES", "PRECISIONS", "EngineConfig", "Tile", "TiledAggregator", "TiledInterpolator", "auto_overlap",
    "estimate_memory", "plan_tiles", "resolve_device", "resolve_precision",
]
