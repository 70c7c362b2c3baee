"""The closed choices of emrepair's options, declared once as StrEnums.

A member compares equal to its string (``Blend.CROP == "crop"``), so options stay plain strings for callers;
the tuples of values (``BLEND_MODES`` and the like, in the modules that use them) and the CLI's messages are
made from these classes.
"""

from __future__ import annotations

from enum import StrEnum


class Blend(StrEnum):
    """How overlapping tiles are blended (engine/blending.py)."""

    GAUSSIAN = "gaussian"
    HANN = "hann"
    CROP = "crop"


class Precision(StrEnum):
    """The engine's arithmetic (autocast on CUDA only; engine/device.py)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class ExecutorKind(StrEnum):
    """What runs the blocks of ``--workers N`` (distributed/choice.py)."""

    AUTO = "auto"
    DAISY = "daisy"
    PROCESS = "process"


class ModelKind(StrEnum):
    """The interface a model offers (models/registry.py): ``model(a, b, t)``, ``model(folded, left, right,
    band_mask)`` or ``model(stack, factor)``."""

    INTERPOLATION = "interpolation"
    FOLD = "fold"
    VOLUME = "volume"


class TrainStage(StrEnum):
    """The stages ``emrepair train --stage`` trains (training/trainers.py): sff's unfold and contrast, reslice's
    windows, planes and fusion."""

    UNFOLD = "unfold"
    CONTRAST = "contrast"
    WINDOWS = "windows"
    PLANES = "planes"
    FUSION = "fusion"


def values(choice: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings of a choice, in declaration order.

    Example:
        >>> values(Blend)
        ('gaussian', 'hann', 'crop')
    """
    return tuple(member.value for member in choice)


def spoken(choice: type[StrEnum]) -> str:
    """The values as a sentence names them.

    Example:
        >>> spoken(ExecutorKind)
        'auto, daisy or process'
    """
    names = values(choice)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
