"""What ``--model auto`` means: the best measured model for the job, from the weights present and the voxel size.

Interpolation between two sections (``flowunet``) serves every stack; the grid model (``reslice``, which fills
gaps from the xz and yz reslices of several sections) learned from FIB-SEM decimated in z, so it is chosen only
where a stack looks like that: for upsample-z, output sections about a pixel apart; for fix, sections
GRID_FIX_RATIOS pixels apart (anisotropic FIB-SEM-like stacks). Unknown voxel sizes count as fitting in
upsample-z, not in fix.

fix picks the grid model on CUDA only. To repair one section it runs a whole window of about 25 rows through
the network twice (xz and yz), so on the CPU it costs several times what flowunet does per section, even with
its bf16 path on CPUs that have native bf16 (docs/benchmarks.md, "FIB-SEM repair on a CPU"); there fix keeps flowunet and says how to ask for the grid model
(:func:`grid_fix_hint`). upsample-z synthesizes every row of its windows, so the grid model costs it only about
five times flowunet, and it picks it on any device.
"""

from __future__ import annotations

import functools
import math

from emrepair.callbacks import WarnCallback

# Learned interpolation models in order of measured quality; the first with weights present is the default.
PREFERRED_MODELS = ("flowunet",)
FALLBACK_MODEL = "flow"
GRID_MODEL = "reslice"
GRID_ROW_SPACING = (0.5, 2.0)   # upsample-z: output section spacing / pixel size where GRID_MODEL is the default
GRID_FIX_RATIOS = (2.0, 8.0)    # fix: section spacing / pixel size where GRID_MODEL is the default


def default_model_name() -> str:
    """The best measured interpolation model that has trained weights and beats flow (``ModelSpec.beats_flow``),
    or the weight-free ``flow`` baseline."""
    from emrepair.models import list_models

    available = {spec.name: spec for spec in list_models()}
    for name in PREFERRED_MODELS:
        spec = available.get(name)
        if spec is not None and spec.beats_flow and spec.has_weights():
            return name
    return FALLBACK_MODEL


def _pixels_apart(voxel_size: tuple[float, float, float] | None, factor: int = 1) -> float | None:
    """Section spacing (divided by ``factor``) over the mean pixel size; None when the voxel size is unknown."""
    if voxel_size is None or not all(math.isfinite(v) and v > 0 for v in voxel_size):
        return None
    z, y, x = voxel_size
    return z / factor / ((y + x) / 2)


def _grid_model_max_factor() -> int | None:
    """The grid model's largest factor, from its weights' own config, when they are present and readable; else
    None."""
    from emrepair.models.registry import get_spec

    weights = get_spec(GRID_MODEL).weights_path()
    return None if weights is None else _stored_max_factor(str(weights), weights.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _stored_max_factor(path: str, mtime_ns: int) -> int | None:
    """``max_factor`` of the grid model checkpoint at ``path`` (read once per file version: fix --model auto asks
    twice, for its pick and for its CPU hint)."""
    from emrepair.errors import InputError
    from emrepair.models.checkpoint import read_checkpoint
    from emrepair.models.registry import get_spec

    try:
        stored = dict(read_checkpoint(path)["config"])
    except InputError:
        return None  # loading them would fail too; auto then keeps the interpolation default
    return int(stored.get("max_factor", get_spec(GRID_MODEL).config_cls().max_factor))


def _grid_fits_fix(voxel_size: tuple[float, float, float] | None) -> bool:
    """Whether the grid model has weights and the stack's sections lie GRID_FIX_RATIOS pixels apart."""
    ratio = _pixels_apart(voxel_size)
    return ratio is not None and GRID_FIX_RATIOS[0] <= ratio <= GRID_FIX_RATIOS[1] and bool(_grid_model_max_factor())


def default_fix_model(voxel_size: tuple[float, float, float] | None, device_type: str) -> str:
    """``fix --model auto`` on a device of type ``device_type`` ("cuda", "cpu"): GRID_MODEL on CUDA for stacks
    whose sections lie GRID_FIX_RATIOS pixels apart (unknown: no), else :func:`default_model_name`."""
    if device_type == "cuda" and _grid_fits_fix(voxel_size):
        return GRID_MODEL
    return default_model_name()


def grid_fix_hint(voxel_size: tuple[float, float, float] | None, device_type: str) -> str | None:
    """The line fix prints when it kept the interpolation model on a non-CUDA device for a stack the grid model
    would repair better; None otherwise."""
    if device_type == "cuda" or not _grid_fits_fix(voxel_size):
        return None
    return (f"this stack looks like FIB-SEM: --model {GRID_MODEL} repairs such stacks better (docs/benchmarks.md) "
            "but takes several times as long per section on a CPU, so the default here is the faster "
            f"{default_model_name()}")


def default_upsample_model(voxel_size: tuple[float, float, float] | None, factor: int) -> str:
    """``upsample-z --model auto``: GRID_MODEL when its weights exist, it offers ``factor`` and the output's
    sections lie GRID_ROW_SPACING pixels apart (or the voxel size is unknown); else :func:`default_model_name`."""
    largest = _grid_model_max_factor()
    if largest is not None and 2 <= factor <= largest:
        spacing = _pixels_apart(voxel_size, factor)
        if spacing is None or GRID_ROW_SPACING[0] <= spacing <= GRID_ROW_SPACING[1]:
            return GRID_MODEL
    return default_model_name()


def auto_fix_model(choice: str, voxel_size: tuple[float, float, float] | None, device_type: str,
                   note: WarnCallback) -> str:
    """The model fix runs for ``--model choice``: ``auto`` resolved by :func:`default_fix_model` (and the
    :func:`grid_fix_hint` line passed to ``note`` when there is one); any other choice as given."""
    if choice != "auto":
        return choice
    hint = grid_fix_hint(voxel_size, device_type)
    if hint is not None:
        note(hint)
    return default_fix_model(voxel_size, device_type)
