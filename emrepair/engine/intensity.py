"""Map stored section values to the [0, 1] floats the models see, and back, without losing range or dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensityMap:
    """A linear map ``unit = (value - lo) / (hi - lo)`` shared by the sections of one repair run."""

    lo: float
    hi: float
    dtype: np.dtype

    @classmethod
    def for_sections(cls, sections: list[np.ndarray]) -> "IntensityMap":
        """Choose the map for a group of sections of one dtype.

        uint8 always uses its full range, so repairs of uint8 data do not depend on the neighbours' contrast.
        uint16 and float32 use the joint finite range of the sections: EM in uint16 often fills a small part of
        the 0..65535 range, and float data has no fixed range.
        """
        dtype = sections[0].dtype
        if dtype == np.uint8:
            return cls(0.0, 255.0, dtype)
        finite = [s[np.isfinite(s)] if dtype.kind == "f" else s for s in sections]
        values = [f for f in finite if f.size]
        if not values:
            return cls(0.0, 1.0, dtype)
        lo = float(min(v.min() for v in values))
        hi = float(max(v.max() for v in values))
        if hi <= lo:
            hi = lo + 1.0
        return cls(lo, hi, dtype)

    def to_unit(self, section: np.ndarray) -> np.ndarray:
        """Section values -> float32 in [0, 1] (non-finite values become 0)."""
        unit = (section.astype(np.float64) - self.lo) / (self.hi - self.lo)
        unit = np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(unit, 0.0, 1.0).astype(np.float32)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """Float in [0, 1] -> values of the stored dtype, rounded and clipped for integers."""
        values = np.clip(unit.astype(np.float64), 0.0, 1.0) * (self.hi - self.lo) + self.lo
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            return np.clip(np.rint(values), info.min, info.max).astype(self.dtype)
        return values.astype(self.dtype)


_DEAD_ZONE = 0.1


def match_contrast(synth: np.ndarray, own: np.ndarray, ring: np.ndarray) -> float:
    """The offset that brings the synthesized pixels to the section's own level over ``ring``.

    The offset matches the means over the section's own pixels beyond the seam; there is no gain: a gain from
    the two images' spreads (pixel-level, or of 8-px local means) cost 0.4-0.9 dB in the lost region, because a
    synthesized section is smoother than a real one (benchmarks/bench_partial.py repair). An offset under
    ``_DEAD_ZONE`` of the own pixels' standard deviation, or fewer than 64 usable pixels, mean no change.
    """
    usable = ring & np.isfinite(own) & np.isfinite(synth)
    if usable.sum() < 64:
        return 0.0
    o = own[usable].astype(np.float64)
    offset = float(o.mean() - synth[usable].astype(np.float64).mean())
    # a small difference is the two images' structure, not a change of level: correcting it cost up to 0.3 dB
    return offset if abs(offset) > _DEAD_ZONE * float(o.std()) else 0.0
