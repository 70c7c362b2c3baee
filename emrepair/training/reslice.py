"""Training ``reslice`` (z super-resolution on xz / yz reslices) on isotropic stacks decimated in z.

An isotropic stack (FIB-SEM) kept at every factor-th section is what upsample-z receives; the sections
between are the truth. Each chunk of the run draws a factor f and a phase, builds the model's input
channels for the whole decimated training slab once (``ResliceModel.volume_channels``: the same code
inference runs, flow warps included), and then trains on random xz and yz planes cut from it: a plane
of ``plane_rows`` rows along z and ``crop`` pixels across, flipped along x and along z at random, with
brightness and contrast jitter. The loss (Charbonnier) covers the synthesized rows only. Drawing planes
instead of 3-D windows is what makes a CPU run practical: one step costs a 2-D U-Net pass over
``batch_size`` planes.

The last ``VAL_FRACTION`` of each stack's sections are held out; the end of the run scores them at
every trained factor (whole held-out slab, model beside linear interpolation along z).

Run: ``emrepair train STACK.h5 --model reslice --stage planes --minutes 30 -o weights/reslice.pt``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from emrepair.callbacks import TimedProgressCallback
from emrepair.engine.metrics import psnr
from emrepair.errors import InputError
from emrepair.models.checkpoint import save_checkpoint
from emrepair.models.flow import FLOW_METHODS
from emrepair.models.reslice import ResliceConfig, ResliceModel, image_channels
from emrepair.models.widen import widen_unet
from emrepair.training.sampling import JITTER_BRIGHTNESS, JITTER_CONTRAST
from emrepair.training.sff import (
    TimedRunConfig,
    run_timed,
)

VAL_FRACTION = 0.2
DEFAULT_STACKS = ("neuroproof_medulla_train1.h5",)


@dataclass
class ResliceTrainConfig(TimedRunConfig):
    """Settings of a reslice training run (see :class:`TimedRunConfig`; ``crop`` is a plane's width).

    Attributes:
        plane_rows: rows (sections along z) per training plane.
        factors: decimation factors drawn (uniformly) per chunk.
        chunk_steps: steps drawn from one (factor, phase) before the next is built.
        missing_chunks: fraction of chunks in which some kept sections are missing too (runs of 1-2), so the
            model also learns the gaps that ``fix`` repairs on the same grid.
        axes: the axes of each isotropic training slab that chunks are decimated along, drawn uniformly: "z"
            (the sections, as upsample-z sees them), "y" and "x" (the slab turned so that its xz or yz planes are
            the sections: more planes from the same voxels; see :func:`turned`).
    """

    crop: int = 128
    batch_size: int = 8
    lr: float = 5e-4
    minutes: float = 30.0
    plane_rows: int = 64
    factors: tuple[int, ...] = field(default=(2, 3, 4, 5, 6))
    chunk_steps: int = 100
    missing_chunks: float = 0.3
    axes: tuple[str, ...] = ("z",)


def load_stacks(data_dir: Path, names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """Each stack as a float32 (Z, Y, X) array in [0, 1] (uint8 or uint16 input)."""
    from emrepair.io import open_volume

    out = []
    for name in names:
        path = data_dir / name
        if not path.exists():
            raise InputError(f"{path}: no such stack (give --data, or --stacks names inside it)")
        with open_volume(str(path)) as volume:
            array = np.stack([volume.read_section(z) for z in range(volume.shape[0])])
        scale = 1.0 / (65535.0 if array.dtype == np.uint16 else 255.0)
        out.append((name, (array.astype(np.float32) * np.float32(scale))))
    return out


def split(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training slab, held-out slab): the last VAL_FRACTION of the sections are held out."""
    n_val = max(1, int(round(VAL_FRACTION * volume.shape[0])))
    return volume[:-n_val], volume[-n_val:]


AXES = ("z", "y", "x")


def turned(slab: np.ndarray, axis: str) -> np.ndarray:
    """The (Z, Y, X) ``slab`` with ``axis`` moved first (a contiguous copy unless it is "z"), so that decimating
    its first axis decimates ``axis``: for "y" the sections become the slab's xz planes and the planes drawn
    across them are its xy and yz planes, decimated along y. Only meaningful for isotropic voxels."""
    if axis not in AXES:
        raise InputError(f"axis must be one of {AXES}, got {axis!r}")
    if axis == "z":
        return slab
    return np.ascontiguousarray(np.moveaxis(slab, AXES.index(axis), 0))


def training_pool(slabs: list[tuple[np.ndarray, np.ndarray]], axes: tuple[str, ...]) -> list[np.ndarray]:
    """Every training slab turned to each of ``axes`` (``turned``), the arrays chunks are drawn from."""
    return [turned(train, axis) for train, _ in slabs for axis in axes]


def decimated_channels(model: ResliceModel, volume: np.ndarray, factor: int, phase: int,
                       dropped: list[int] | None = None) -> tuple[np.ndarray, int]:
    """The model's input channels (C, rows, Y, X) for ``volume`` kept at sections phase, phase + f, ...
    less the kept sections listed in ``dropped`` (indices among the kept: missing sections), and the section
    index of row 0."""
    kept = list(range(phase, volume.shape[0], factor))
    gone = set(dropped or ())
    rows = [z - phase for i, z in enumerate(kept) if i not in gone]
    known = torch.from_numpy(np.ascontiguousarray(volume[[phase + r for r in rows]]))[None, None]
    with torch.no_grad():
        channels = model.grid_channels(known, rows, kept[-1] - phase + 1)[0].numpy()
    return channels, phase


def missing_runs(count: int, rng: np.random.Generator, fraction: float = 0.1, longest: int = 2) -> list[int]:
    """Indices among ``count`` kept sections to drop as missing: runs of 1..longest, about ``fraction`` of them,
    never the first or the last."""
    out: set[int] = set()
    for _ in range(max(1, int(round(fraction * count / (1 + longest) * 2)))):
        length = int(rng.integers(1, longest + 1))
        start = int(rng.integers(1, max(2, count - length)))
        out.update(i for i in range(start, start + length) if 0 < i < count - 1)
    return sorted(out)


def draw_chunk(model: ResliceModel, pool: list[np.ndarray], cfg: ResliceTrainConfig,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of a run: a random slab of ``pool`` (``training_pool``) kept at a random factor and phase (with
    missing runs in ``cfg.missing_chunks`` of the chunks); its channels (C, rows, Y, X) and the truth of each row."""
    train = pool[int(rng.integers(len(pool)))]
    f = int(rng.choice(cfg.factors))
    phase = int(rng.integers(f))
    count = len(range(phase, train.shape[0], f))
    dropped = missing_runs(count, rng) if rng.random() < cfg.missing_chunks else None
    channels, start = decimated_channels(model, train, f, phase, dropped)
    return channels, train[start:start + channels.shape[1]]


class PlaneSampler:
    """Random training planes from one decimated stack's channels and truth; with ``offsets`` (the model's
    ``plane_offsets``) each plane carries the image channels of its neighbouring planes too, as
    ``ResliceModel.with_neighbours`` lays them out."""

    def __init__(self, channels: np.ndarray, truth: np.ndarray, rows: int, width: int,
                 rng: np.random.Generator, offsets: tuple[int, ...] = ()) -> None:
        self.channels, self.truth, self.rng = channels, truth, rng
        self.offsets = tuple(offsets)
        self.rows = min(rows, channels.shape[1])
        self.width = min(width, *channels.shape[2:])
        self.rows -= self.rows % 8
        self.width -= self.width % 8
        base = channels.shape[0]
        self.images = image_channels(base)
        # reversed z: the warps from below (2) and from above (3) trade places, in the plane and in each neighbour
        swapped = [{2: 3, 3: 2}.get(c, c) for c in range(base)]
        group = [self.images.index(swapped[c]) for c in self.images]
        self.reverse = swapped + [base + k * len(group) + g for k in range(len(self.offsets)) for g in group]
        self.mirrors = sorted(self.offsets) == sorted(-o for o in self.offsets)

    def plane(self) -> tuple[np.ndarray, np.ndarray]:
        """One (C, rows, width) input plane and its (1, rows, width) truth, augmented."""
        rng, (_, depth, height, width) = self.rng, self.channels.shape
        z0 = int(rng.integers(0, depth - self.rows + 1))
        rows = slice(z0, z0 + self.rows)
        sign = -1 if self.mirrors and rng.random() < 0.5 else 1  # mirrored across the plane
        if rng.random() < 0.5:  # xz plane at a random y
            y, x0 = int(rng.integers(height)), int(rng.integers(0, width - self.width + 1))
            cols = slice(x0, x0 + self.width)
            parts = [self.channels[:, rows, y, cols]] + [
                self.channels[self.images, rows, min(max(y + sign * o, 0), height - 1), cols] for o in self.offsets]
            tgt = self.truth[rows, y, cols][None]
        else:                   # yz plane at a random x
            x, y0 = int(rng.integers(width)), int(rng.integers(0, height - self.width + 1))
            cols = slice(y0, y0 + self.width)
            parts = [self.channels[:, rows, cols, x]] + [
                self.channels[self.images, rows, cols, min(max(x + sign * o, 0), width - 1)] for o in self.offsets]
            tgt = self.truth[rows, cols, x][None]
        inp = np.concatenate(parts) if self.offsets else parts[0]
        if rng.random() < 0.5:
            inp, tgt = inp[:, :, ::-1], tgt[:, :, ::-1]
        if rng.random() < 0.5:
            inp, tgt = inp[self.reverse, ::-1], tgt[:, ::-1]
        contrast = float(rng.uniform(*JITTER_CONTRAST))
        brightness = float(rng.uniform(-JITTER_BRIGHTNESS, JITTER_BRIGHTNESS))
        inp = np.array(inp, dtype=np.float32)
        image = [c for c in range(inp.shape[0]) if c != 1]  # all but the distance
        inp[image] = (inp[image] - 0.5) * contrast + 0.5 + brightness
        tgt = (np.asarray(tgt, dtype=np.float32) - 0.5) * contrast + 0.5 + brightness
        return inp, tgt


def plane_loss(model: ResliceModel, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Charbonnier of linear + residual against the truth, over the synthesized rows (distance > 0) only."""
    out = inputs[:, :1] + model.plane_residual(inputs)
    synthesized = (inputs[:, 1:2] > 0).float()  # the distance channel is 0 on known rows only
    error = torch.sqrt((out - target) ** 2 + 1e-6) * synthesized
    return error.sum() / synthesized.sum().clamp_min(1.0)


def validate_reslice(model: ResliceModel, held_out: list[np.ndarray], factors: tuple[int, ...]) -> dict[str, dict]:
    """Mean PSNR (dB) of the model and of linear interpolation along z over the synthesized sections of each
    held-out slab kept at every factor-th section, per factor."""
    model.eval()
    out: dict[str, dict] = {}
    with torch.no_grad():
        for f in factors:
            mine, lin = [], []
            for slab in held_out:
                span = (slab.shape[0] - 1) // f * f
                if span < f:
                    continue
                known = torch.from_numpy(np.ascontiguousarray(slab[:span + 1:f]))[None, None]
                pred = model(known, f)[0, 0].numpy()
                base = model.volume_channels(known, f)[0, 0].numpy()
                for z in range(span + 1):
                    if z % f:
                        mine.append(psnr(pred[z], slab[z]))
                        lin.append(psnr(base[z], slab[z]))
            if mine:
                out[str(f)] = {"reslice_db": round(float(np.mean(mine)), 3), "linear_db": round(float(np.mean(lin)), 3),
                               "sections": len(mine)}
    model.train()
    return out


def train_reslice(data_dir: Path, out_path: Path, config: ResliceTrainConfig | None = None,
                  model_config: ResliceConfig | None = None, stacks: tuple[str, ...] = DEFAULT_STACKS,
                  init: Path | None = None, device: str = "cpu", progress: TimedProgressCallback | None = None,
                  flow_method: str | None = None, plane_offsets: tuple[int, ...] | None = None) -> dict:
    """Train a ResliceModel on the isotropic ``stacks`` of ``data_dir`` and save it at ``out_path``.

    ``flow_method`` (with ``init``: in place of the checkpoint's) sets how the flow-warped inputs are estimated;
    ``plane_offsets`` with ``init`` gives its planes neighbouring-plane inputs (``with_plane_offsets``).
    Returns the run's summary (also the checkpoint's meta).
    """
    cfg = config or ResliceTrainConfig()
    target = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if init is not None:
        from emrepair.models import load_model

        model, _ = load_model(str(init), allow_random=False)
        if not isinstance(model, ResliceModel):
            raise InputError(f"{init}: not a reslice checkpoint")
        if model_config is not None and model_config.widths != model.config.widths:
            model = widened(model, model_config.widths)
    else:
        model = ResliceModel(model_config)
    if flow_method is not None:
        model.config = replace(model.config, flow_method=flow_method)
    if plane_offsets is not None and tuple(plane_offsets) != model.config.plane_offsets:
        model = with_plane_offsets(model, tuple(plane_offsets))
    bad = [f for f in cfg.factors if f not in model.factors or f < 2]
    if bad:
        raise InputError(f"factors {bad} are outside the model's 2..{model.config.max_factor}")
    volumes = load_stacks(data_dir, stacks)
    slabs = [split(v) for _, v in volumes]
    pool = training_pool(slabs, cfg.axes)
    model = model.to(target).train()
    state: dict = {"sampler": None, "left": 0}

    def losses_at() -> dict[str, torch.Tensor]:
        if state["left"] == 0:
            channels, truth = draw_chunk(model, pool, cfg, rng)
            state["sampler"] = PlaneSampler(channels, truth, cfg.plane_rows, cfg.crop, rng,
                                            model.config.plane_offsets)
            state["left"] = cfg.chunk_steps
        state["left"] -= 1
        planes = [state["sampler"].plane() for _ in range(cfg.batch_size)]
        inputs = torch.from_numpy(np.stack([p[0] for p in planes])).to(target)
        truth = torch.from_numpy(np.stack([p[1] for p in planes])).to(target)
        return {"total": plane_loss(model, inputs, truth)}

    step, _, minutes = run_timed(cfg, list(model.parameters()), losses_at, progress)
    model = model.cpu()
    summary = {
        "steps": step, "minutes": round(minutes, 2), "device": str(target),
        "validation": validate_reslice(model, [held for _, held in slabs], cfg.factors),
        "train_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "trained_on": [f"{name} (sections before the last {VAL_FRACTION:.0%} held out)" for name, _ in volumes],
    }
    save_checkpoint(out_path, model, model.config, summary)
    return summary


def widened(model: ResliceModel, widths: tuple[int, ...]) -> ResliceModel:
    """``model`` with its view U-Net grown to ``widths`` (``widen_unet``: the same output until trained on).

    Raises:
        InputError: ``widths`` has another number of levels, a narrower level, or the model has a fusion stage.
    """
    if model.fuse is not None:
        raise InputError("widening a reslice model with an xy fusion stage is not supported")
    try:
        unet = widen_unet(model.unet, widths)
    except ValueError as error:
        raise InputError(f"--widths: {error}") from None
    grown = ResliceModel(replace(model.config, widths=tuple(widths)))
    grown.unet = unet
    return grown


def with_plane_offsets(model: ResliceModel, offsets: tuple[int, ...]) -> ResliceModel:
    """``model`` given the image channels of the planes ``offsets`` away as extra inputs, computing the same
    function until trained on: the weights that read the new channels start at zero.

    Raises:
        InputError: the model already reads neighbouring planes, or has a fusion stage.
    """
    if model.config.plane_offsets or model.fuse is not None:
        raise InputError("plane offsets can only be added to a reslice model of single planes without fusion")
    try:
        grown = ResliceModel(replace(model.config, plane_offsets=tuple(offsets)))
    except ValueError as error:
        raise InputError(f"--plane-offsets: {error}") from None
    state = model.unet.state_dict()
    first = "down.0.0.weight"
    weight = torch.zeros_like(grown.unet.state_dict()[first])
    weight[:, :model.unet.in_channels] = state[first]
    state[first] = weight
    grown.unet.load_state_dict(state)
    return grown


def with_fusion(model: ResliceModel, fuse_widths: tuple[int, ...]) -> ResliceModel:
    """``model``'s trained views with a fresh xy fusion U-Net of ``fuse_widths`` (kept if it has one that size)."""
    config = replace(model.config, fuse_widths=tuple(fuse_widths))
    fused = ResliceModel(config)
    fused.unet.load_state_dict(model.unet.state_dict())
    if model.fuse is not None and model.config.fuse_widths == config.fuse_widths:
        fused.fuse.load_state_dict(model.fuse.state_dict())  # type: ignore[union-attr]
    return fused


class SectionSampler:
    """Random xy crops of the fusion stage's inputs from one decimated stack: the two views are computed once
    for the whole stack (the view network is frozen)."""

    def __init__(self, model: ResliceModel, channels: np.ndarray, truth: np.ndarray, crop: int,
                 rng: np.random.Generator) -> None:
        with torch.no_grad():
            self.x = torch.from_numpy(channels)[None]
            self.xz, self.yz = model.views(self.x)
        self.model, self.truth, self.rng = model, truth, rng
        depth = channels.shape[1]
        self.rows = [r for r in range(depth // 4, depth - depth // 4) if channels[1, r, 0, 0] > 0] \
            or [r for r in range(depth) if channels[1, r, 0, 0] > 0]
        self.crop = min(crop, *channels.shape[2:]) // 8 * 8

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One (C_f, crop, crop) input and its (1, crop, crop) truth, flipped at random."""
        rng, c = self.rng, self.crop
        r = self.rows[int(rng.integers(len(self.rows)))]
        y0 = int(rng.integers(0, self.truth.shape[1] - c + 1))
        x0 = int(rng.integers(0, self.truth.shape[2] - c + 1))
        inp = self.model.fuse_inputs(self.x, self.xz, self.yz, r)[0, :, y0:y0 + c, x0:x0 + c].numpy()
        tgt = self.truth[r, y0:y0 + c, x0:x0 + c][None]
        if rng.random() < 0.5:
            inp, tgt = inp[:, ::-1], tgt[:, ::-1]
        if rng.random() < 0.5:
            inp, tgt = inp[:, :, ::-1], tgt[:, :, ::-1]
        return np.ascontiguousarray(inp), np.ascontiguousarray(tgt)


def train_fusion(data_dir: Path, init: Path, out_path: Path, fuse_widths: tuple[int, ...],
                 config: ResliceTrainConfig | None = None, stacks: tuple[str, ...] = DEFAULT_STACKS,
                 device: str = "cpu", progress: TimedProgressCallback | None = None) -> dict:
    """Train the xy fusion stage of the reslice checkpoint ``init`` (its views frozen) on crops of the sections
    between the kept ones; save the whole model at ``out_path``. Returns the run's summary (the checkpoint's
    meta, with the views' training under ``views``)."""
    from emrepair.models import load_model
    from emrepair.models.checkpoint import read_checkpoint

    cfg = config or ResliceTrainConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    base, _ = load_model(str(init))
    if not isinstance(base, ResliceModel):
        raise InputError(f"{init}: not a reslice checkpoint")
    model = with_fusion(base, fuse_widths).train()
    for p in model.unet.parameters():
        p.requires_grad_(False)
    volumes = load_stacks(data_dir, stacks)
    slabs = [split(v) for _, v in volumes]
    pool = training_pool(slabs, cfg.axes)
    target = torch.device(device)
    state: dict = {"sampler": None, "left": 0}

    def losses_at() -> dict[str, torch.Tensor]:
        if state["left"] == 0:
            channels, truth = draw_chunk(model, pool, cfg, rng)
            # the views of a block of 2 * plane_rows grid rows (sections drawn from its middle half) per chunk
            rows = min(2 * cfg.plane_rows, channels.shape[1])
            r0 = int(rng.integers(0, channels.shape[1] - rows + 1))
            channels, truth = np.ascontiguousarray(channels[:, r0:r0 + rows]), truth[r0:r0 + rows]
            model.cpu()
            state["sampler"] = SectionSampler(model, channels, truth, cfg.crop, rng)
            model.to(target)
            state["left"] = cfg.chunk_steps
        state["left"] -= 1
        pairs = [state["sampler"].sample() for _ in range(cfg.batch_size)]
        inputs = torch.from_numpy(np.stack([p[0] for p in pairs])).to(target)
        truth = torch.from_numpy(np.stack([p[1] for p in pairs])).to(target)
        out = 0.5 * (inputs[:, :1] + inputs[:, 1:2]) + model.xy_residual(inputs)
        return {"total": torch.sqrt((out - truth) ** 2 + 1e-6).mean()}

    fuse_params = list(model.fuse.parameters())  # type: ignore[union-attr]
    step, _, minutes = run_timed(cfg, fuse_params, losses_at, progress)
    model = model.cpu()
    summary = {
        "views": read_checkpoint(init)["meta"],
        "fusion": {"steps": step, "minutes": round(minutes, 2), "device": str(target),
                   "train_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}},
        "validation": validate_reslice(model, [held for _, held in slabs], cfg.factors),
        "trained_on": [f"{name} (sections before the last {VAL_FRACTION:.0%} held out)" for name, _ in volumes],
    }
    save_checkpoint(out_path, model, model.config, summary)
    return summary


def train_reslice_stage(stage: str, data_dir: Path, out_path: Path, config: ResliceTrainConfig | None = None,
                        stacks: tuple[str, ...] = DEFAULT_STACKS, *, init: Path | None = None, device: str = "cpu",
                        progress: TimedProgressCallback | None = None, flow: bool = True, widths: tuple[int, ...] | None = None,
                        plane_offsets: tuple[int, ...] | None = None, flow_method: str | None = None,
                        fuse_widths: tuple[int, ...] | None = None) -> dict:
    """``emrepair train --model reslice --stage planes|fusion``: the plane trainer (:func:`train_reslice`), or
    the xy fusion stage (``fuse_widths``) on top of the trained views of ``init`` (:func:`train_fusion`).

    For "planes", ``init`` continues from a reslice checkpoint (its own config unless ``widths`` grows its
    U-Net); without ``init`` a fresh model has ``flow``, ``widths`` and ``plane_offsets``. Returns the summary.
    """
    if flow_method is not None and flow_method not in FLOW_METHODS:
        raise InputError(f"flow_method must be one of {', '.join(FLOW_METHODS)}, got {flow_method!r}")
    if stage == "fusion":
        if init is None or not fuse_widths:
            raise InputError("the fusion stage trains on top of trained views: give --init CHECKPOINT and "
                             "--set fuse_widths=W,W,...")
        return train_fusion(data_dir, init, out_path, tuple(fuse_widths), config, stacks, device=device,
                            progress=progress)
    if init is not None and not widths:
        model_config = None  # the checkpoint's own config
    else:
        sizes = {"widths": tuple(widths)} if widths else {}
        offsets = {"plane_offsets": tuple(plane_offsets)} if plane_offsets and init is None else {}
        try:
            model_config = ResliceConfig(flow=flow, **sizes, **offsets)
        except ValueError as error:
            raise InputError(str(error)) from None
    return train_reslice(data_dir, out_path, config, model_config, stacks, init=init, device=device,
                         progress=progress, flow_method=flow_method,
                         plane_offsets=tuple(plane_offsets) if plane_offsets else None)
