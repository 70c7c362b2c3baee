"""Plan a z upsampling: the factor (given, or derived from a target z spacing), output shape, voxel size, positions,
and the blocks of the output.

Blocks of an upsample-z run: output z-ranges that start at an original section and own whole chunk slabs.

A cut at output z = c is allowed where c is a multiple of both the factor (so it falls on an original section,
and every pair's synthesized sections stay in one block) and the output chunk depth (so blocks written by
different processes never share a chunk): cuts at multiples of lcm(factor, chunk depth). The cut depends only
on the depth, the factor and the chunk depth, never on the number of shares or workers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from emrepair.errors import InputError, UsageError
from emrepair.pipelines.model_choice import _pixels_apart

# Label written in --masks volumes for sections interpolated between two originals. 1, 2 and 3 mean what they mean
# for fix (missing, fold band, partial: KIND_LABELS), as do 4 and 5, so interpolated sections get a value of their own.
INTERPOLATED_LABEL = 9


@dataclass(frozen=True)
class UpsampleFactor:
    """The integer z factor chosen for a run, and the spacing it gives.

    Attributes:
        factor: sections per original interval (factor - 1 synthesized between each pair).
        z_nm: the input's z spacing in nm, or None when unknown.
        target_nm: the ``--target-z`` asked for, or None when the factor was given directly.
    """

    factor: int
    z_nm: float | None = None
    target_nm: float | None = None

    @property
    def output_z_nm(self) -> float | None:
        """The output's z spacing in nm (None when the input's is unknown)."""
        return None if self.z_nm is None else self.z_nm / self.factor

    def describe(self) -> str:
        """One line for the user, e.g. ``factor 4: z spacing 40 nm -> 10 nm (target 12 nm)``."""
        text = f"factor {self.factor}"
        if self.z_nm is not None:
            text += f": z spacing {self.z_nm:g} nm -> {self.output_z_nm:g} nm"
        if self.target_nm is not None:
            text += f" (target {self.target_nm:g} nm)"
        return text


ISOTROPIC_PIXELS_APART = 1.25  # sections at most this many pixels apart count as isotropic already


def isotropy_note(voxel_size: tuple[float, float, float] | None, factor: int) -> str | None:
    """A warning when the input's sections are already about a pixel apart (so upsampling makes them thinner
    than its pixels); None when they are not or the voxel size is unknown."""
    apart = _pixels_apart(voxel_size)
    if apart is None or apart > ISOTROPIC_PIXELS_APART:
        return None
    z, y, x = voxel_size  # type: ignore[misc]
    return (f"the stack is already isotropic (sections {z:g} nm apart, pixels {y:g} x {x:g} nm): --factor {factor} "
            f"makes sections {z / factor:g} nm apart, thinner than its pixels")


MAX_FACTOR = 64  # finer than any section spacing asks for (50 nm sections to 4 nm pixels is 12.5)


def resolve_factor(factor: int | None, target_z: float | None,
                   voxel_size: tuple[float, float, float] | None) -> UpsampleFactor:
    """Choose the integer factor from ``--factor`` or ``--target-z`` (exactly one must be given).

    ``--target-z`` rounds the input z spacing / target to the nearest integer.

    Raises:
        UsageError: neither or both given, a non-positive target, or a factor below 2 or above MAX_FACTOR.
        InputError: ``--target-z`` on a volume whose voxel size is unknown.
    """
    z_nm = _known_z(voxel_size)
    if (factor is None) == (target_z is None):
        raise UsageError("give exactly one of --factor N or --target-z NM")
    if factor is not None:
        if factor < 2 or factor > MAX_FACTOR:
            raise UsageError(f"--factor must be an integer from 2 to {MAX_FACTOR}, got {factor}")
        return UpsampleFactor(factor, z_nm)
    assert target_z is not None
    if not math.isfinite(target_z) or target_z <= 0:
        raise UsageError(f"--target-z must be a positive spacing in nm, got {target_z:g}")
    if z_nm is None:
        raise InputError("--target-z needs the input's voxel size, which is unknown; give --factor instead")
    derived = math.floor(z_nm / target_z + 0.5)  # half up, not Python's round-half-even
    if derived < 2:
        raise UsageError(f"--target-z {target_z:g} nm from a z spacing of {z_nm:g} nm gives factor {derived}; "
                         f"upsampling needs a target of at most {z_nm / 1.5:g} nm")
    if derived > MAX_FACTOR:
        raise UsageError(f"--target-z {target_z:g} nm from a z spacing of {z_nm:g} nm gives factor {derived}, "
                         f"above the largest, {MAX_FACTOR}")
    return UpsampleFactor(derived, z_nm, float(target_z))


def output_depth(depth: int, factor: int) -> int:
    """Number of output sections: (depth - 1) * factor + 1."""
    return (depth - 1) * factor + 1


def output_voxel_size(voxel_size: tuple[float, float, float] | None,
                      factor: int) -> tuple[float, float, float] | None:
    """The input voxel size with z divided by ``factor`` (None stays None)."""
    if voxel_size is None:
        return None
    z, y, x = voxel_size
    return (float(z) / factor, float(y), float(x))


def positions(factor: int) -> list[float]:
    """Interpolation positions between two consecutive sections: j / factor for j = 1..factor-1."""
    return [j / factor for j in range(1, factor)]


def check_depth(depth: int) -> None:
    """Raise InputError for a volume that has no pair of sections to interpolate between."""
    if depth < 2:
        raise InputError(f"upsampling in z needs at least 2 sections, the volume has {depth}")


def _known_z(voxel_size: tuple[float, float, float] | None) -> float | None:
    if voxel_size is None:
        return None
    z = float(voxel_size[0])
    return z if math.isfinite(z) and z > 0 else None


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
    return [UpsampleBlock(a, b, factor, depth) for a, b in itertools.pairwise(edges)]
