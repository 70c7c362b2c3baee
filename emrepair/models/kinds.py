"""The kinds of model, as types: what the engine and the pipelines may ask of an interpolation, volume, grid or
fold model (``typing.Protocol``s), and the checks that tell a loaded model's kind without probing attributes.

A model's ``kind`` attribute (``choices.ModelKind``) says which interface it offers; a grid model is a volume
model that can also fill gaps on a grid of known rows (``fill_grid``). ``pipelines.repairers.runner_for`` picks
the tiled runner of each kind.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeGuard, runtime_checkable

import torch

from emrepair.choices import ModelKind
from emrepair.models.registry import model_kind as kind_of


@runtime_checkable
class InterpolationKind(Protocol):
    """``model(a, b, t)``: the (B, 1, H, W) section at ``t`` between ``a`` and ``b`` (``base.InterpolationModel``)."""

    name: str
    halo: int
    size_multiple: int

    def __call__(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class VolumeKind(Protocol):
    """``model(stack, factor)``: z super-resolution of a (B, 1, D, H, W) stack by one of ``factors``."""

    name: str
    kind: str
    halo: int
    size_multiple: int
    config: Any

    @property
    def factors(self) -> tuple[int, ...]: ...

    def __call__(self, stack: torch.Tensor, factor: int) -> torch.Tensor: ...


@runtime_checkable
class GridKind(VolumeKind, Protocol):
    """A volume model that also fills the rows of a gap from known rows around it (``reslice``): it reads
    ``repair_context`` good sections beyond each neighbour of a gap, windows of ``z_context`` sections, and
    ``z_group`` planes per pass; ``config.max_factor`` bounds its row ratio."""

    z_context: int
    repair_context: int
    z_group: int

    def fill_grid(self, known: torch.Tensor, rows: list[int], total: int) -> torch.Tensor: ...


@runtime_checkable
class FoldKind(Protocol):
    """``model(folded, left, right, band)``: a folded section restored from itself, its neighbours and its band
    (``sff``); ``restore`` is the repair proper (see ``engine.fold_repair``)."""

    name: str
    kind: str
    config: Any

    def restore(self, folded: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                band: torch.Tensor) -> Any: ...


def is_volume(model: Any) -> TypeGuard[VolumeKind]:
    """Whether ``model`` is a volume model (``model(stack, factor)``)."""
    return kind_of(model) == ModelKind.VOLUME and isinstance(model, VolumeKind)


def is_grid(model: Any) -> TypeGuard[GridKind]:
    """Whether ``model`` is a grid model: a volume model that fills gaps on a grid (``reslice``)."""
    return is_volume(model) and isinstance(model, GridKind)


def is_fold(model: Any) -> TypeGuard[FoldKind]:
    """Whether ``model`` is a fold model (``model(folded, left, right, band)``)."""
    return kind_of(model) == ModelKind.FOLD and isinstance(model, FoldKind)


def is_interpolation(model: Any) -> TypeGuard[InterpolationKind]:
    """Whether ``model`` is an interpolation model (``model(a, b, t)``)."""
    return kind_of(model) == ModelKind.INTERPOLATION
