"""The optical-flow baseline: OpenCV flow both ways, each side warped to t, then cross-faded."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from emrepair.models.base import InterpolationModel, linear_blend

FLOW_METHODS = ("dis", "dis-smooth", "farneback")
# "dis-smooth": DIS (PRESET_MEDIUM) with a longer, stiffer variational refinement than the preset's (5 iterations,
# alpha 20). On FIB-SEM 40 nm apart it interpolates +0.3 dB better (benchmarks/linear_ceilings.py flow-settings).
SMOOTH_ITERATIONS = 20
SMOOTH_ALPHA = 160.0


@dataclass
class FlowConfig:
    """Settings of the flow baseline.

    Attributes:
        method: "dis" (DIS optical flow, PRESET_MEDIUM), "dis-smooth" (the same with a stiffer variational
            refinement) or "farneback".
        halo: context in pixels the tiler should give each side (about the largest expected motion).
    """

    method: str = "dis"
    halo: int = 32

    def __post_init__(self) -> None:
        if self.method not in FLOW_METHODS:
            raise ValueError(f"flow method must be one of {FLOW_METHODS}, got {self.method!r}")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, the input OpenCV's flow estimators expect."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def estimate_flow(src: np.ndarray, dst: np.ndarray, method: str) -> np.ndarray:
    """Dense flow F with ``src(x) ~ dst(x + F(x))``, as an (H, W, 2) float32 array of (dx, dy)."""
    if method in ("dis", "dis-smooth"):
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        if method == "dis-smooth":
            dis.setVariationalRefinementIterations(SMOOTH_ITERATIONS)
            dis.setVariationalRefinementAlpha(SMOOTH_ALPHA)
        return dis.calc(to_uint8(src), to_uint8(dst), None)
    return cv2.calcOpticalFlowFarneback(
        to_uint8(src), to_uint8(dst), None, pyr_scale=0.5, levels=4, winsize=21,
        iterations=5, poly_n=7, poly_sigma=1.5, flags=0,
    )


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + flow(x))`` with bilinear sampling and replicated borders."""
    h, w = image.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1],
        interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )


def flow_interpolate(a: np.ndarray, b: np.ndarray, t: float, method: str = "dis") -> np.ndarray:
    """The (H, W) section at t between float images a and b in [0, 1].

    For a motion ``b(x) = a(x - d)`` the flows are F_ab = d and F_ba = -d, so the section at t is
    ``a(x + t F_ba(x))`` seen from a and ``b(x + (1 - t) F_ab(x))`` seen from b (flows sampled at x,
    the usual small-motion approximation); the two are blended with weights 1 - t and t.
    """
    from_a, from_b = flow_warps(a, b, t, method)
    return (1.0 - t) * from_a + t * from_b


def flow_warps(a: np.ndarray, b: np.ndarray, t: float, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """Sections a and b each warped to position t (see :func:`flow_interpolate`), as float32 (H, W)."""
    return flow_warps_at(a, b, [t], method)[0]


def flow_warps_at(a: np.ndarray, b: np.ndarray, ts: list[float],
                  method: str = "dis") -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`flow_warps` at several positions, estimating the two flows once."""
    flows = PairFlows(a, b, method)
    return [flows.warps(t) for t in ts]


class PairFlows:
    """The two flows of one section pair, estimated once, warped to any t (the same pixels as ``flow_warps``)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, method: str) -> None:
        self.a, self.b = a, b
        self.flow_ab = estimate_flow(a, b, method)
        self.flow_ba = estimate_flow(b, a, method)

    def warps(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Both sections warped to position t."""
        return backward_warp(self.a, t * self.flow_ba), backward_warp(self.b, (1.0 - t) * self.flow_ab)


_FLOW_CACHE: OrderedDict[tuple[str, bytes], PairFlows] = OrderedDict()
_FLOW_CACHE_SIZE = 2  # the engine's items are tile-major: a tile's t come one after another
_FLOW_CACHE_LOCK = threading.Lock()


def _cached_flows(a: np.ndarray, b: np.ndarray, method: str) -> PairFlows:
    """PairFlows of (a, b), reused when the same pair comes again: the engine asks for one (tile, t) item at a
    time, so a run of k missing sections would otherwise estimate every tile's flows k times. The key is a
    digest of both images' bytes, so a hit is the same pixels and gives the same result."""
    digest = hashlib.blake2b(digest_size=16)
    for image in (a, b):
        digest.update(repr((image.shape, image.dtype.str)).encode())
        digest.update(np.ascontiguousarray(image).data)
    key = (method, digest.digest())
    with _FLOW_CACHE_LOCK:
        hit = _FLOW_CACHE.get(key)
        if hit is not None:
            _FLOW_CACHE.move_to_end(key)
            return hit
    flows = PairFlows(np.array(a), np.array(b), method)
    with _FLOW_CACHE_LOCK:
        _FLOW_CACHE[key] = flows
        while len(_FLOW_CACHE) > _FLOW_CACHE_SIZE:
            _FLOW_CACHE.popitem(last=False)
    return flows


@torch.no_grad()
def batch_flow_warps(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor,
                     method: str = "dis") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`flow_warps` for (B, 1, H, W) tensors and t (B,), computed on the CPU with OpenCV and
    returned on the input's device and dtype (no gradient flows through the flow estimate)."""
    a_np = a[:, 0].detach().float().cpu().numpy()
    b_np = b[:, 0].detach().float().cpu().numpy()
    ts = t.detach().float().cpu().tolist()
    pairs = [_cached_flows(ai, bi, method).warps(ti) for ai, bi, ti in zip(a_np, b_np, ts)]
    from_a, from_b = (torch.from_numpy(np.stack([p[i] for p in pairs])[:, None]).to(device=a.device, dtype=a.dtype)
                      for i in range(2))
    return from_a, from_b


class FlowModel(InterpolationModel):
    """Classical optical-flow interpolation; runs on the CPU with OpenCV whatever the input device."""

    name = "flow"
    size_multiple = 1

    def __init__(self, config: FlowConfig | None = None) -> None:
        super().__init__()
        self.config = config or FlowConfig()

    @property
    def halo(self) -> int:  # type: ignore[override]
        """Context the tiler should add each side, from the config."""
        return self.config.halo

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Interpolate each batch item on the CPU and return the result on the input's device."""
        from_a, from_b = batch_flow_warps(a, b, t, self.config.method)
        return linear_blend(from_a, from_b, t)
