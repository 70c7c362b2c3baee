"""The interface every interpolation model implements, and the runtime shape checks they share."""

from __future__ import annotations

import torch
from torch import nn


def check_shape(x: torch.Tensor, spec: str, name: str = "tensor", **known: int) -> dict[str, int]:
    """Check that ``x`` has the layout ``spec`` (e.g. ``"B,1,H,W"``) and return the named sizes.

    Integers in ``spec`` must match exactly; letters bind to the size found and must agree with
    any value passed in ``known`` (``check_shape(b, "B,1,H,W", B=2, H=64, W=64)``).

    Raises:
        ValueError: naming the tensor, the expected layout and the shape found.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape ({spec}), got {type(x).__name__}")
    dims = [d.strip() for d in spec.split(",")]
    if x.ndim != len(dims):
        raise ValueError(f"{name} must have shape ({spec}), got {tuple(x.shape)}")
    bound = dict(known)
    for dim, size in zip(dims, x.shape):
        size = int(size)
        if dim.isdigit():
            if size != int(dim):
                raise ValueError(f"{name} must have shape ({spec}), got {tuple(x.shape)}")
        elif dim in bound and bound[dim] != size:
            raise ValueError(
                f"{name} must have shape ({spec}) with {dim}={bound[dim]}, got {tuple(x.shape)}"
            )
        else:
            bound[dim] = size
    return bound


class InterpolationModel(nn.Module):
    """A model that synthesizes the section at position ``t`` between sections ``a`` and ``b``.

    Subclasses implement :meth:`interpolate`; :meth:`forward` validates the inputs first and, in
    eval mode, clamps the result to [0, 1].

    Attributes:
        name: the registry name of the model.
        halo: pixels of context the tiler should add on each side of a tile.
        size_multiple: H and W must be multiples of this (the engine pads).
    """

    name: str = "base"
    halo: int = 0
    size_multiple: int = 1

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Return the (B, 1, H, W) section at ``t`` in (0, 1) between a (t=0) and b (t=1).

        Args:
            a: (B, 1, H, W) float in [0, 1].
            b: (B, 1, H, W) float in [0, 1], same shape, dtype and device as ``a``.
            t: (B,) float, the position of each output between its a and b.
        """
        self.check_inputs(a, b, t)
        out = self.interpolate(a, b, t.to(dtype=a.dtype))
        if not self.training:
            out = out.clamp(0.0, 1.0)
        return out

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model proper, called with validated inputs; see :meth:`forward`."""
        raise NotImplementedError

    def check_inputs(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> None:
        """Raise ValueError unless a, b, t follow the contract of :meth:`forward`."""
        dims = check_shape(a, "B,1,H,W", "a")
        check_shape(b, "B,1,H,W", "b", **dims)
        check_shape(t, "B", "t", B=dims["B"])
        for label, x in (("a", a), ("b", b), ("t", t)):
            if not x.is_floating_point():
                raise ValueError(f"{label} must be a floating-point tensor, got {x.dtype}")
        if b.dtype != a.dtype or b.device != a.device or t.device != a.device:
            raise ValueError(
                f"a, b and t must share dtype and device, got a {a.dtype}/{a.device}, "
                f"b {b.dtype}/{b.device}, t {t.device}"
            )
        m = self.size_multiple
        if dims["H"] % m or dims["W"] % m:
            raise ValueError(
                f"{self.name}: H and W must be multiples of {m}, got {dims['H']}x{dims['W']} (pad first)"
            )
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"t must lie in [0, 1], got {t.tolist()}")


def linear_blend(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b with t of shape (B,) broadcast over (B, C, H, W)."""
    tt = t.view(-1, 1, 1, 1)
    return (1.0 - tt) * a + tt * b


def check_volume_input(stack: torch.Tensor, factor: int, factors: tuple[int, ...]) -> dict[str, int]:
    """Check a volume model's input: a floating (B, 1, D >= 2, H, W) stack and an int ``factor`` in ``factors``;
    returns the named dims.

    Raises:
        ValueError: bad shape, dtype, depth or factor.
    """
    dims = check_shape(stack, "B,1,D,H,W", "stack")
    if not stack.is_floating_point():
        raise ValueError(f"stack must be a floating-point tensor, got {stack.dtype}")
    if dims["D"] < 2:
        raise ValueError(f"stack needs at least 2 sections along z, got {dims['D']}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor not in factors:
        raise ValueError(f"factor must be one of {factors}, got {factor!r}")
    return dims


def channels_last_convs(model: nn.Module) -> nn.Module:
    """Store every 2-D convolution's weight in channels-last (NHWC) memory order, in place; returns ``model``.

    Values are unchanged; on a CPU, oneDNN then runs those convolutions (and the layers after them, which keep
    the order) on NHWC tensors, which is markedly faster for the small-channel U-Nets here (docs/benchmarks.md).
    Other layers and 3-D convolutions are left as they are.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model
