"""Memory per tile: measuring a model's bytes per pixel, estimating a batch, sizing tiles to fit.

A model may declare ``bytes_per_pixel`` (peak forward memory per input pixel for batch 1); else it
is measured. On CUDA the measurement is the peak allocated memory (``max_memory_allocated``) of two
probe forwards of different sizes, taking the larger of their slope and the per-pixel peak. On
the CPU, where peak memory cannot be read back, it is the sum of the outputs of every leaf module
of one probe forward, per pixel: a rough upper bound for plain conv nets, which free activations
as they go, but it misses tensors made by functional calls inside ``forward``.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn

PROBE_SIDES = (128, 256)
MIN_AUTO_TILE = 64
MAX_AUTO_TILE = 4096
CPU_DEFAULT_TILE = 512
GPU_MEMORY_FRACTION = 0.7


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= value."""
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    """The largest multiple of ``multiple`` that is <= value (at least ``multiple``)."""
    return max(value // multiple, 1) * multiple


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def bytes_per_pixel(model: nn.Module, autocast_dtype: torch.dtype | None = None) -> float:
    """Peak forward memory per input pixel for a batch of one, declared or measured (see module doc)."""
    declared = getattr(model, "bytes_per_pixel", None)
    if declared is not None:
        if not isinstance(declared, (int, float)) or declared <= 0:
            raise ValueError(f"model.bytes_per_pixel must be a positive number, got {declared!r}")
        return float(declared)
    device = model_device(model)
    if device.type == "cuda":
        return _measure_cuda(model, device, autocast_dtype)
    return _measure_activations(model, device)


def estimate_memory(model: nn.Module, tile_size: int, batch_size: int,
                    autocast_dtype: torch.dtype | None = None) -> int:
    """Rough bytes one forward pass needs: parameters plus batch_size tiles of tile_size² pixels.

    The tile is padded to the model's ``size_multiple`` first. The engine's own float32
    accumulators, (len(ts) + 1) * height * width * 4 bytes per section, come on top (host memory).
    """
    if tile_size < 1 or batch_size < 1:
        raise ValueError(f"tile_size and batch_size must be positive, got {tile_size} and {batch_size}")
    side = round_up(tile_size, int(getattr(model, "size_multiple", 1)))
    per_pixel = bytes_per_pixel(model, autocast_dtype)
    return int(parameter_bytes(model) + batch_size * side * side * per_pixel)


def tile_size_for_budget(budget_bytes: float, per_pixel: float, batch_size: int, size_multiple: int,
                         min_tile: int = MIN_AUTO_TILE, max_tile: int = MAX_AUTO_TILE) -> int:
    """The largest square tile (a multiple of size_multiple, within [min_tile, max_tile]) whose
    batch of ``batch_size`` fits in ``budget_bytes`` at ``per_pixel`` bytes per pixel.

    Returns min_tile (rounded up to the multiple) when even that does not fit.
    """
    if per_pixel <= 0 or batch_size < 1 or size_multiple < 1:
        raise ValueError(f"need positive per_pixel, batch_size, size_multiple; got {per_pixel}, "
                         f"{batch_size}, {size_multiple}")
    side = int(math.sqrt(max(budget_bytes, 0.0) / (batch_size * per_pixel)))
    low = round_up(min_tile, size_multiple)
    high = max(round_down(max_tile, size_multiple), low)
    return min(max(round_down(side, size_multiple), low), high)


def free_cuda_bytes(device: torch.device) -> int:
    """Bytes the caching allocator can still hand out on ``device``: free plus reserved-but-unused."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def _probe_inputs(model: nn.Module, side: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    side = round_up(side, int(getattr(model, "size_multiple", 1)))
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, side, side, generator=generator).to(device)
    b = torch.rand(1, 1, side, side, generator=generator).to(device)
    return a, b, torch.full((1,), 0.5, device=device)


def _measure_cuda(model: nn.Module, device: torch.device, autocast_dtype: torch.dtype | None) -> float:
    peaks, pixels = [], []
    autocast = (torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype is not None
                else nullcontext())
    for side in PROBE_SIDES:
        a, b, t = _probe_inputs(model, side, device)
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode(), autocast:
            model(a, b, t)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        pixels.append(a.shape[-1] * a.shape[-2])
    slope = (peaks[1] - peaks[0]) / (pixels[1] - pixels[0])
    return float(max(slope, peaks[1] / pixels[1], 1.0))


def _measure_activations(model: nn.Module, device: torch.device) -> float:
    total = 0
    leaves = [m for m in model.modules() if not list(m.children())]

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        a, b, t = _probe_inputs(model, PROBE_SIDES[0], device)
        with torch.inference_mode():
            out = model(a, b, t)
    finally:
        for handle in handles:
            handle.remove()
    inputs = a.numel() * a.element_size() * 2 + out.numel() * out.element_size()
    return float(max(total + inputs, 1) / (a.shape[-1] * a.shape[-2]))
