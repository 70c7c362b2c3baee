"""What an upsample-z run did (or, for a dry run, would do): shapes, factor, repaired and interpolated sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emrepair.pipelines.options import RunResult
from emrepair.pipelines.upsample.plan import UpsampleFactor, positions


@dataclass(kw_only=True)
class UpsampleResult(RunResult):
    """What an upsample-z run did (or, for a dry run, would do)."""

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    factor: UpsampleFactor
    input_voxel_size: tuple[float, float, float] | None
    output_voxel_size: tuple[float, float, float] | None
    host_memory_bytes: int
    repair_model: str | None = None
    already_complete: bool = False  # --continue / --part found the output finished by this very run
    estimated_seconds: float | None = None  # a dry run's estimate from one timed tile (upsampler.estimate_seconds)

    repaired_input = RunResult.repaired_sections  # input z of every section the repair step synthesized (in part)

    @property
    def repaired_output(self) -> list[int]:
        """Output z of every repaired section (factor * input z)."""
        return [self.factor.factor * z for z in self.repaired_input]

    @property
    def region_repaired_input(self) -> list[int]:
        """Input z of the partly lost sections among the repaired ones: only their lost region and its seam
        (at most 16 px) are synthesized, every pixel farther from the region is the input's own."""
        from emrepair.pipelines.upsample.stream import region_repaired

        return region_repaired(self.runs)

    @property
    def region_repaired_output(self) -> list[int]:
        """Output z of the partly lost sections (factor * input z)."""
        return [self.factor.factor * z for z in self.region_repaired_input]

    @property
    def interpolated_count(self) -> int:
        """Number of output sections synthesized between originals."""
        return (self.input_shape[0] - 1) * (self.factor.factor - 1)

    def synthetic_output(self) -> list[int]:
        """Every output z whose pixels are synthetic: all z' not a multiple of the factor, plus repaired ones."""
        f = self.factor.factor
        repaired = set(self.repaired_output)
        return [z for z in range(self.output_shape[0]) if z % f or z in repaired]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the run, as written by ``--save-report``."""
        vs = (lambda v: list(v) if v is not None else None)
        return {
            "version": 1, "input": self.input, "output": self.output,
            "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "factor": self.factor.factor, "target_z_nm": self.factor.target_nm,
            "input_voxel_size": vs(self.input_voxel_size), "output_voxel_size": vs(self.output_voxel_size),
            "t": [round(t, 6) for t in positions(self.factor.factor)],
            "model": self.model, "weights_sha256": self.weights_sha256, "device": self.device,
            "dry_run": self.dry_run, "repair_runs": [r.to_dict() for r in self.runs],
            "repaired_input_sections": self.repaired_input, "repaired_output_sections": self.repaired_output,
            "region_repaired_input_sections": self.region_repaired_input,
            "region_repaired_output_sections": self.region_repaired_output,
            "interpolated_sections": {"rule": "z % factor != 0", "count": self.interpolated_count},
            "tiles_per_section": self.tiles_per_section, "memory_estimate_bytes": self.memory_estimate_bytes,
            "host_memory_bytes": self.host_memory_bytes, "seconds": round(self.seconds, 3),
            "warnings": self.warnings, "repair_model": self.repair_model, "complete": self.complete,
            "already_complete": self.already_complete, "blocks": self.blocks_dict(),
            "estimated_seconds": None if self.estimated_seconds is None else round(self.estimated_seconds, 1),
        }
