"""ResliceNet: z super-resolution by 2-D U-Nets on the xz and yz reslices of a window of sections.

Ours, not from one of the papers. A network interpolating between two sections sees only that pair;
resliced, the same window is a stack of xz (and yz) images in which every known section is a row, so a
2-D network sees how structures run through many sections at once: their curvature along z, where
they start and stop. For each synthesized row the network is given

* the linear interpolation along z of the known rows (the base its output is added to),
* the row's distance, in rows, to the nearest known row (scaled),
* optionally (``flow=True``) the section below and the section above warped to the row with OpenCV's
  DIS flow (as the ``flow`` baseline warps them), which carries the in-plane motion the reslice
  cannot see.

One shared U-Net runs on every xz plane and on every yz plane; the two views' predictions are averaged.
An optional third stage (``fuse_widths``) looks at each synthesized section in xy: a U-Net given both
views, the distance and the flow warps corrects their mean where in-plane context tells (the views see
one line of each section at a time). Known sections pass through bit-identically. The same code fills
gaps on any grid (``fill_grid``: rows of missing sections among the known ones), which is how ``fix``
and ``eval`` use it for FIB-SEM-like stacks. The model is a kind-"volume" model: ``forward(stack, factor)``
like ``gan3d``, and it asks the upsample-z window for ``z_context`` sections of context on each side of
a group of ``z_group`` pairs (results depend on a pair's group only, never on how a run is cut).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.models.base import check_shape, check_volume_input
from emrepair.models.flow import FLOW_METHODS, flow_warps_at
from emrepair.models.small_unet import SmallUNet

# Pixels per chunk of planes sent through the U-Net at once: bounds activation memory (~32 MB per
# 16-channel float32 feature map) whatever the window's size.
PLANE_CHUNK_PIXELS = 1 << 19


@dataclass
class ResliceConfig:
    """Settings of :class:`ResliceModel`.

    Attributes:
        widths: U-Net channels per level (each level halves both plane axes).
        fuse_widths: channels of the optional xy fusion U-Net (empty: none), which corrects the mean of the
            two views section by section from both views, the distance and the flow warps.
        flow: add the two flow-warped neighbours as input channels.
        flow_method: "dis", "dis-smooth" or "farneback" (see ``emrepair.models.flow``).
        max_factor: largest z upsampling factor offered.
        z_context: sections of context the window adds on each side of the pairs it keeps.
        repair_context: good sections used beyond each neighbour when a gap of missing sections is repaired
            (fix, eval). Each costs the network a whole window, and one missing section is all it outputs, so
            fewer than ``z_context`` (docs/upsample.md has the measured trade-off).
        z_group: pairs synthesized from one window (fewer recomputed context rows per kept section).
        halo: context pixels in y and x for the tiler.
        plane_offsets: neighbouring planes (pixels across the plane, e.g. (-6, -3, 3, 6)) whose image channels
            (linear and the flow warps) are added as inputs to each plane's: context in the third axis, so a
            plane sees how the structures it cuts run across it (empty: one plane at a time).
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    fuse_widths: tuple[int, ...] = ()
    flow: bool = True
    flow_method: str = "dis"
    max_factor: int = 8
    z_context: int = 3
    repair_context: int = 2
    z_group: int = 8
    halo: int = 32
    plane_offsets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.fuse_widths = tuple(int(w) for w in self.fuse_widths)
        self.plane_offsets = tuple(int(o) for o in self.plane_offsets)
        if 0 in self.plane_offsets or len(set(self.plane_offsets)) != len(self.plane_offsets):
            raise ValueError(f"plane_offsets must be distinct and non-zero, got {self.plane_offsets}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive channel counts, got {self.widths}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"flow_method must be one of {FLOW_METHODS}, got {self.flow_method!r}")
        if (self.max_factor < 2 or min(self.z_context, self.repair_context, self.halo) < 0
                or self.z_group < 1):
            raise ValueError("max_factor must be >= 2, z_context, repair_context and halo >= 0, z_group >= 1")


# Rows to the nearest known section are given to the network divided by this (about 1 at factor 8).
DISTANCE_SCALE = 4.0


def row_positions(depth: int, factor: int) -> torch.Tensor:
    """t in [0, 1) of each of the (depth - 1) * factor + 1 output rows relative to the known row below it."""
    rows = torch.arange((depth - 1) * factor + 1, dtype=torch.float32)
    return (rows % factor) / factor


def bracketing_rows(known_rows: list[int], total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``total`` output rows: indices (into ``known_rows``) of the known rows at or below and at or
    above it, and its position t between them (0 on a known row; rows outside the known ones take the end)."""
    known = torch.tensor(known_rows, dtype=torch.long)
    if known.numel() == 0 or bool((known[1:] <= known[:-1]).any()) or known[0] < 0 or known[-1] >= total:
        raise ValueError(f"known rows must be increasing and inside 0..{total - 1}, got {known_rows}")
    rows = torch.arange(total)
    below = (torch.searchsorted(known, rows, right=True) - 1).clamp(0, len(known) - 1)
    above = torch.searchsorted(known, rows).clamp(0, len(known) - 1)
    lo, hi = known[below].float(), known[above].float()
    t = torch.where(hi > lo, (rows.float() - lo) / (hi - lo).clamp_min(1.0), torch.zeros(()))
    return below, above, t


def image_channels(base_channels: int) -> list[int]:
    """Which of a plane's ``base_channels`` (4 with flow: linear, distance, the two warps; 2 without) are images."""
    return [0, 2, 3] if base_channels == 4 else [0]


class ResliceModel(nn.Module):
    """The reslice z super-resolution network; ``forward(stack, factor)`` (see the module docstring)."""

    name = "reslice"
    kind = "volume"
    size_multiple = 1
    # Its U-Nets may run in bf16 on a CPU with native bf16 (engine.device.volume_autocast_dtype); what that
    # costs and saves is measured in docs/benchmarks.md ("FIB-SEM repair on a CPU").
    cpu_bf16 = True

    def __init__(self, config: ResliceConfig | None = None) -> None:
        super().__init__()
        self.config = config or ResliceConfig()
        self.unet = SmallUNet(self.base_channels + len(self.image_channels) * len(self.config.plane_offsets), 1,
                              self.config.widths)
        self.fuse = SmallUNet(5 if self.config.flow else 4, 1, self.config.fuse_widths) \
            if self.config.fuse_widths else None

    @property
    def base_channels(self) -> int:
        """Channels of one plane: linear, distance and (with flow) the two warps."""
        return 4 if self.config.flow else 2

    @property
    def image_channels(self) -> list[int]:
        """The base channels that are images (linear and the warps), the ones a neighbouring plane adds."""
        return image_channels(self.base_channels)

    @property
    def halo(self) -> int:
        """Context pixels in y and x, from the config."""
        return self.config.halo

    @property
    def z_context(self) -> int:
        """Sections of context on each side of a window's kept pairs."""
        return self.config.z_context

    @property
    def repair_context(self) -> int:
        """Good sections beyond each neighbour of a repaired gap."""
        return self.config.repair_context

    @property
    def z_group(self) -> int:
        """Pairs synthesized per window."""
        return self.config.z_group

    @property
    def factors(self) -> tuple[int, ...]:
        """The z upsampling factors this model offers."""
        return tuple(range(1, self.config.max_factor + 1))

    def volume_channels(self, stack: torch.Tensor, factor: int) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B, C, (D - 1) factor + 1, H, W): :meth:`grid_channels` with the sections every
        factor-th row."""
        depth = stack.shape[2]
        return self.grid_channels(stack, [p * factor for p in range(depth)], (depth - 1) * factor + 1)

    def grid_channels(self, known: torch.Tensor, rows: list[int], total: int) -> torch.Tensor:
        """The network's input channels on a grid of ``total`` rows whose rows ``rows`` are the sections of
        ``known`` (B, 1, K, H, W) (any spacing, so gaps of missing sections too): linear along z between the
        nearest known rows, rows to the nearest known row / DISTANCE_SCALE, and (with ``flow``) the known
        sections below and above warped to each row (known rows: themselves). -> (B, C, total, H, W)."""
        below, above, t = bracketing_rows(rows, total)
        batch, _, _, height, width = known.shape
        device, dtype = known.device, known.dtype
        tt = t.to(device=device, dtype=dtype).view(1, 1, total, 1, 1)
        low = known.index_select(2, below.to(device))
        high = known.index_select(2, above.to(device))
        linear = (1.0 - tt) * low + tt * high
        row_index = torch.arange(total, dtype=torch.float32)
        gap = torch.tensor(rows, dtype=torch.float32)
        distance = torch.minimum(row_index - gap[below], gap[above] - row_index).clamp_min(0.0) / DISTANCE_SCALE
        channels = [linear, distance.to(device=device, dtype=dtype).view(1, 1, total, 1, 1)
                    .expand(batch, 1, total, height, width)]
        if self.config.flow:
            from_below, from_above = linear.clone(), linear.clone()
            sections = known[:, 0].detach().float().cpu().numpy()
            for k in range(len(rows) - 1):
                between = list(range(rows[k] + 1, rows[k + 1]))
                if not between:
                    continue
                ts = [(r - rows[k]) / (rows[k + 1] - rows[k]) for r in between]
                for i in range(batch):
                    warps = flow_warps_at(sections[i, k], sections[i, k + 1], ts, self.config.flow_method)
                    for r, (from_a, from_b) in zip(between, warps):
                        from_below[i, 0, r] = torch.from_numpy(from_a)
                        from_above[i, 0, r] = torch.from_numpy(from_b)
            channels += [from_below, from_above]
        return torch.cat(channels, dim=1)

    def with_neighbours(self, planes: torch.Tensor, group: int, start: int, stop: int) -> torch.Tensor:
        """The network's input for the planes ``start:stop`` of ``planes`` (N, base channels, Z, X), laid out as
        N / ``group`` images of ``group`` adjacent planes each: their channels, then the image channels of the
        planes ``plane_offsets`` away in the same image (clamped at its edges)."""
        if not self.config.plane_offsets:
            return planes[start:stop]
        index = torch.arange(start, stop, device=planes.device)
        image, position = index // group, index % group
        parts = [planes[start:stop]]
        for offset in self.config.plane_offsets:
            other = image * group + (position + offset).clamp(0, group - 1)
            parts.append(planes[other][:, self.image_channels])
        return torch.cat(parts, dim=1)

    def plane_residual(self, planes: torch.Tensor, group: int | None = None) -> torch.Tensor:
        """(N, C, Z, X) reslices -> (N, 1, Z, X) residuals over their linear channel, in chunks of planes,
        each padded (replicated) to the U-Net's size multiple. With ``group`` (images of that many adjacent
        planes), ``planes`` has the base channels and each chunk's neighbouring planes are gathered here
        (``with_neighbours``); without, ``planes`` already holds the network's whole input."""
        channels = self.base_channels if group is not None else self.unet.in_channels
        check_shape(planes, f"N,{channels},Z,X", "planes")
        m = self.unet.size_multiple
        z, x = planes.shape[-2:]
        pad = (0, -x % m, 0, -z % m)
        per_chunk = max(1, PLANE_CHUNK_PIXELS // ((z + pad[3]) * (x + pad[1])))
        outs = []
        for start in range(0, planes.shape[0], per_chunk):
            stop = min(start + per_chunk, planes.shape[0])
            chunk = planes[start:stop] if group is None else self.with_neighbours(planes, group, start, stop)
            if any(pad):
                chunk = F.pad(chunk, pad, mode="replicate")
            outs.append(self.unet(chunk)[..., :z, :x])
        return torch.cat(outs)

    def forward(self, stack: torch.Tensor, factor: int) -> torch.Tensor:
        """(B, 1, D, H, W) in [0, 1], D >= 2 -> (B, 1, (D - 1) * factor + 1, H, W).

        Output sections z * factor equal the input sections exactly; eval mode clamps to [0, 1].

        Raises:
            ValueError: bad shape, dtype or a factor outside :attr:`factors`.
        """
        dims = check_volume_input(stack, factor, self.factors)
        if factor == 1:
            return stack.clone()
        depth = dims["D"]
        return self.fill_grid(stack, [p * factor for p in range(depth)], (depth - 1) * factor + 1)

    def fill_grid(self, known: torch.Tensor, rows: list[int], total: int) -> torch.Tensor:
        """Every row of a ``total``-row grid whose rows ``rows`` are the sections of ``known`` (B, 1, K, H, W):
        -> (B, 1, total, H, W), the known rows passed through exactly; eval mode clamps to [0, 1]."""
        x = self.grid_channels(known.float(), list(rows), total)
        xz, yz = self.views(x)
        out = 0.5 * (xz + yz)
        if self.fuse is not None:
            out = out + self.fuse_residual(x, xz, yz, rows)
        if not self.training:
            out = out.clamp(0.0, 1.0)
        out = out.clone()
        out[:, :, list(rows)] = known.to(out.dtype)  # the measured sections are never changed
        return out

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The grid (B, 1, R, H, W) predicted from the xz planes and from the yz planes of the channels ``x``
        (B, C, R, H, W): linear plus each view's residual."""
        b, c, total, h, w = x.shape
        xz = self.plane_residual(x.permute(0, 3, 1, 2, 4).reshape(b * h, c, total, w), group=h)
        yz = self.plane_residual(x.permute(0, 4, 1, 2, 3).reshape(b * w, c, total, h), group=w)
        return (x[:, :1] + xz.reshape(b, h, 1, total, w).permute(0, 2, 3, 1, 4),
                x[:, :1] + yz.reshape(b, w, 1, total, h).permute(0, 2, 3, 4, 1))

    def fuse_inputs(self, x: torch.Tensor, xz: torch.Tensor, yz: torch.Tensor, row: int) -> torch.Tensor:
        """The xy fusion network's input for grid row ``row``: (B, C_f, H, W) of the two views, the distance and
        the flow warps (or linear, without flow)."""
        extra = x[:, 2:4, row] if self.config.flow else x[:, :1, row]
        return torch.cat([xz[:, :, row], yz[:, :, row], x[:, 1:2, row], extra], dim=1)

    def fuse_residual(self, x: torch.Tensor, xz: torch.Tensor, yz: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """The xy fusion stage's correction of the views' mean on every row between the known ones (0 on those)."""
        assert self.fuse is not None
        out = torch.zeros_like(xz)
        known = set(rows)
        for r in range(x.shape[2]):
            if r not in known:
                out[:, :, r] = self.xy_residual(self.fuse_inputs(x, xz, yz, r))
        return out

    def xy_residual(self, inputs: torch.Tensor) -> torch.Tensor:
        """The fusion U-Net on (N, C_f, H, W) sections, padded (replicated) to its size multiple."""
        assert self.fuse is not None
        m = self.fuse.size_multiple
        h, w = inputs.shape[-2:]
        pad = (0, -w % m, 0, -h % m)
        padded = F.pad(inputs, pad, mode="replicate") if any(pad) else inputs
        return self.fuse(padded)[..., :h, :w]
