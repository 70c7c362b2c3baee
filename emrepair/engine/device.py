"""Choosing the torch device and the autocast precision the engine runs with."""

from __future__ import annotations

import re
import warnings

import torch

from emrepair.choices import Precision, values
from emrepair.errors import UsageError

DEVICE_SPECS = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = values(Precision)

_CUDA_SPEC = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str) -> torch.device:
    """Turn a device spec ("auto", "cpu", "cuda", "cuda:N") into a torch.device.

    "auto" picks CUDA when it is available and the CPU otherwise. Asking for CUDA where there is
    none falls back to the CPU with a one-line ``UserWarning``; asking for a GPU index that does not
    exist is a usage error.

    Raises:
        UsageError: the spec is none of the forms above, or names a missing GPU.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA_SPEC.match(text)
    if match is None:
        raise UsageError(f"unknown device {spec!r}; use one of {', '.join(DEVICE_SPECS)}")
    if not torch.cuda.is_available():
        warnings.warn(f"device {spec!r} requested but CUDA is not available; running on the CPU",
                      UserWarning, stacklevel=2)
        return torch.device("cpu")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"device {spec!r} does not exist; this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``spec`` on ``device``, or None to run in float32.

    On the CPU the engine always runs in float32 (a warning says so if fp16/bf16 was asked for).
    On CUDA "auto" means bf16 where the GPU supports it (Ampere and later: same range as fp32, so
    no overflow), else fp16 on GPUs with tensor cores (compute capability 7.x), else float32.

    Raises:
        UsageError: ``spec`` is not one of PRECISIONS.
    """
    if spec not in PRECISIONS:
        raise UsageError(f"unknown precision {spec!r}; use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if spec in ("bf16", "fp16"):
            warnings.warn(f"precision {spec} is only used on CUDA; running in fp32 on the CPU",
                          UserWarning, stacklevel=2)
        return None
    if spec == "fp32":
        return None
    if spec == "bf16":
        return torch.bfloat16
    if spec == "fp16":
        return torch.float16
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    major, _minor = torch.cuda.get_device_capability(device)
    return torch.float16 if major >= 7 else None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX-512 BF16 or AMX). Where it does not, bf16 on the
    CPU is emulated and slower than float32, so nothing should autocast to it there."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def volume_autocast_dtype(model: torch.nn.Module, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a kind-"volume" model runs with on ``device``: bf16 on a CPU with native bf16 when
    the model declares ``cpu_bf16`` (measured to change nothing it outputs beyond rounding: docs/benchmarks.md),
    else None (float32)."""
    if device.type == "cpu" and getattr(model, "cpu_bf16", False) and cpu_has_native_bf16():
        return torch.bfloat16
    return None
