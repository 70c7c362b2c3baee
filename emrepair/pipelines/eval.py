"""The eval pipeline: drop good sections of a stack, repair them from their neighbours, score against the truth.

Every requested model runs through the engine exactly as ``emrepair fix`` runs it (same IntensityMap, same
tiling, result rounded to the stored dtype), beside the ``linear`` and ``flow`` baselines and a
"linear blurred to its best PSNR" reference: on noisy ssTEM PSNR rewards smoothness, so a model should
beat that one, not only plain linear, before its PSNR gain means sharper, truer sections.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.engine import TiledInterpolator
from emrepair.engine.intensity import IntensityMap
from emrepair.engine.metrics import psnr, ssim
from emrepair.engine.window import VolumeTiler
from emrepair.errors import UsageError
from emrepair.io.base import Volume
from emrepair.models.kinds import GridKind
from emrepair.pipelines.repairers import Runner

BASELINES = ("linear", "flow")
BLURRED_LINEAR = "linear+blur"
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 16.0)


@dataclass(frozen=True)
class EvalCase:
    """One dropped run: ``targets`` are predicted from ``left`` and ``right`` at ``positions``."""

    left: int
    right: int
    targets: tuple[int, ...]
    positions: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"left": self.left, "right": self.right, "targets": list(self.targets),
                "t": [round(t, 4) for t in self.positions]}


@dataclass
class ModelScores:
    """PSNR and SSIM of one model, per t position, with its speed."""

    name: str
    psnr_by_t: dict[float, list[float]] = field(default_factory=dict)
    ssim_by_t: dict[float, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    megapixels: float = 0.0
    weights_sha256: str | None = None
    note: str | None = None

    def add(self, t: float, p: float, s: float) -> None:
        """Record the scores of one predicted section at position ``t``."""
        key = round(t, 4)
        self.psnr_by_t.setdefault(key, []).append(p)
        self.ssim_by_t.setdefault(key, []).append(s)

    @property
    def psnr(self) -> float:
        """Mean PSNR over every scored section (dB)."""
        return _mean([v for vs in self.psnr_by_t.values() for v in vs])

    @property
    def ssim(self) -> float:
        """Mean SSIM over every scored section."""
        return _mean([v for vs in self.ssim_by_t.values() for v in vs])

    @property
    def seconds_per_megapixel(self) -> float | None:
        """Wall time of the engine per megapixel of synthesized section (None when not timed)."""
        return self.seconds / self.megapixels if self.megapixels > 0 and self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        spm = self.seconds_per_megapixel
        return {
            "name": self.name, "psnr": _finite(self.psnr), "ssim": _finite(self.ssim),
            "psnr_by_t": {f"{t:g}": _finite(_mean(v)) for t, v in sorted(self.psnr_by_t.items())},
            "ssim_by_t": {f"{t:g}": _finite(_mean(v)) for t, v in sorted(self.ssim_by_t.items())},
            "sections": sum(len(v) for v in self.psnr_by_t.values()),
            "seconds_per_megapixel": round(spm, 4) if spm is not None else None,
            "weights_sha256": self.weights_sha256, "note": self.note,
        }


@dataclass
class EvalResult:
    """Scores of every model on the dropped sections of one stack."""

    input: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None
    gap: int
    decimate: int
    device: str
    cases: list[EvalCase]
    scores: list[ModelScores]
    blur_sigma: float | None
    excluded: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def score(self, name: str) -> ModelScores:
        """The scores of the model called ``name``."""
        for item in self.scores:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as printed by ``emrepair eval --json``."""
        return {
            "version": 1, "input": self.input, "shape": list(self.shape),
            "voxel_size": list(self.voxel_size) if self.voxel_size else None,
            "gap": self.gap, "decimate": self.decimate, "device": self.device,
            "cases": [c.to_dict() for c in self.cases], "excluded_defective": self.excluded,
            "blur_sigma": self.blur_sigma, "models": [s.to_dict() for s in self.scores],
            "seconds": round(self.seconds, 3),
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per model (``model``, ``psnr``, ``ssim``, ``dpsnr`` vs linear, ``s_per_mp``, ``note``),
        ready for a table; ``psnr@t`` keys hold per-position PSNR when more than one position was scored."""
        linear_psnr = self.score("linear").psnr
        rows = []
        for item in self.scores:
            row: dict[str, Any] = {"model": item.name, "psnr": item.psnr, "ssim": item.ssim,
                                   "dpsnr": item.psnr - linear_psnr, "s_per_mp": item.seconds_per_megapixel,
                                   "note": item.note or ""}
            if len(item.psnr_by_t) > 1:
                for t, values in sorted(item.psnr_by_t.items()):
                    row[f"psnr@{t:.2f}"] = _mean(values)
            rows.append(row)
        return rows


def plan_cases(depth: int, gap: int, decimate: int, defective: set[int], sections: list[int] | None,
               max_sections: int | None, seed: int) -> list[EvalCase]:
    """The runs to drop: each is ``gap`` sections ``decimate`` apart whose neighbours ``decimate`` before and
    after exist, with no defective section among neighbours and targets.

    ``sections`` names the first target of each run (default: every valid one); ``max_sections`` keeps that
    many runs, drawn reproducibly with ``seed`` and kept in z order.

    Raises:
        UsageError: bad gap or decimation, a named section that cannot be evaluated, or no valid run.
    """
    if gap < 1:
        raise UsageError(f"--gap must be at least 1, got {gap}")
    if decimate < 1:
        raise UsageError(f"--decimate must be at least 1, got {decimate}")
    positions = tuple(j / (gap + 1) for j in range(1, gap + 1))

    def case_at(first: int) -> EvalCase | None:
        left, right = first - decimate, first + gap * decimate
        targets = tuple(first + j * decimate for j in range(gap))
        if left < 0 or right >= depth or defective & {left, right, *targets}:
            return None
        return EvalCase(left, right, targets, positions)

    if sections is not None:
        cases = []
        for z in sections:
            case = case_at(z)
            if case is None:
                raise UsageError(f"section {z} cannot be evaluated with --gap {gap} --decimate {decimate}: it needs "
                                 f"good sections {z - decimate} and {z + gap * decimate} in a stack of {depth}")
            cases.append(case)
    else:
        cases = [c for c in (case_at(z) for z in range(depth)) if c is not None]
    if not cases:
        raise UsageError(f"no section of this {depth}-section stack can be evaluated with --gap {gap} "
                         f"--decimate {decimate}")
    if max_sections is not None and max_sections < len(cases):
        if max_sections < 1:
            raise UsageError(f"--max-sections must be at least 1, got {max_sections}")
        picked = np.random.default_rng(seed).choice(len(cases), size=max_sections, replace=False)
        cases = [cases[i] for i in sorted(picked)]
    return cases


def evaluate(
    path: str,
    models: list[str],
    *,
    gap: int = 1,
    decimate: int = 1,
    sections: list[int] | None = None,
    max_sections: int | None = None,
    device: str = "auto",
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    precision: str = "auto",
    dataset: str | None = None,
    detect: bool = True,
    allow_random: bool = False,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> EvalResult:
    """Drop good sections of ``path``, repair them with each model and score them against the originals.

    Args:
        path: the volume (any format ``open_volume`` reads).
        models: model names or checkpoint paths, or ``auto`` (what fix would pick, :func:`resolve_auto`);
            ``linear`` and ``flow`` are always added first.
        gap: K, the length of each dropped run; its sections are predicted at t = j / (K + 1).
        decimate: for isotropic stacks, keep every ``decimate``-th section around the run, so neighbours lie
            ``decimate`` sections from their targets (10 nm FIB-SEM with 4 -> 40 nm serial sections).
        sections: first targets of the runs to drop (default: all valid ones).
        max_sections: evaluate at most this many runs (drawn with ``seed``).
        device, tile_size, overlap, batch_size, precision: the engine's settings, as for ``fix``.
        dataset: the dataset inside a container.
        detect: exclude sections the detector calls defective (runs touching one are skipped).
        allow_random: let learned models without weights run untrained (timing only).
        progress: called with (runs done, runs total).
    """
    import warnings

    from emrepair.engine import EngineConfig, resolve_device
    from emrepair.io import open_volume
    from emrepair.models import load_model
    from emrepair.models.registry import require_interpolation
    from emrepair.pipelines.repairers import grid_model, runner_for

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target_device = resolve_device(device)
    names = list(dict.fromkeys([*BASELINES, *resolve_auto(path, models, decimate, dataset, target_device.type)]))
    engine_config = EngineConfig(tile_size=tile_size, overlap=overlap, batch_size=batch_size,
                                 device=str(target_device), precision=precision)
    engines: dict[str, Runner] = {}
    scores: dict[str, ModelScores] = {}
    for name in names:
        model, meta = load_model(name, device=str(target_device), allow_random=allow_random)
        if grid_model(model) is None:  # a grid model (reslice) fills the gap from sections on both sides
            require_interpolation(model, f"--model {name}")
        engines[name] = runner_for(model, engine_config, f"--model {name}", volume_batch_size=1)
        untrained = meta.weights_path is None and any(True for _ in model.parameters())
        scores[name] = ModelScores(name=name, weights_sha256=meta.weights_sha256,
                                   note="random weights" if untrained else None)
    with open_volume(path, dataset=dataset) as vol:
        defective: set[int] = set()
        if detect:
            from emrepair.detection import detect_volume

            defective = set(detect_volume(vol).defective_z())
        cases = plan_cases(vol.shape[0], gap, decimate, defective, sections, max_sections, seed)
        shape, voxel_size = tuple(vol.shape), vol.info.voxel_size
        _warm_up(engines, vol.shape[1:])
        grids = {name: GridCases(vol, engine.model, decimate, defective)
                 for name, engine in engines.items() if isinstance(engine, VolumeTiler)}
        linear_outputs: list[tuple[float, np.ndarray, np.ndarray]] = []
        for done, case in enumerate(cases, start=1):
            _score_case(vol, case, engines, scores, linear_outputs, grids)
            if progress is not None:
                progress(done, len(cases))
    blurred, sigma = _best_blurred_linear(linear_outputs)
    return EvalResult(
        input=str(path), shape=shape, voxel_size=voxel_size, gap=gap, decimate=decimate,
        device=str(target_device), cases=cases, scores=[*scores.values(), blurred], blur_sigma=sigma,
        excluded=sorted(defective), seconds=time.perf_counter() - started,
    )


def resolve_auto(path: str, models: list[str], decimate: int, dataset: str | None = None,
                 device_type: str = "cpu") -> list[str]:
    """``models`` with ``auto`` replaced by what ``fix --model auto`` picks on ``device_type`` for the stack as
    evaluated: its voxel size with z times ``decimate`` (``model_choice.default_fix_model``)."""
    if "auto" not in models:
        return list(models)
    from emrepair.io import open_volume
    from emrepair.pipelines.model_choice import default_fix_model

    with open_volume(path, dataset=dataset) as vol:
        voxel = vol.info.voxel_size
    if voxel is not None:
        voxel = (voxel[0] * decimate, voxel[1], voxel[2])
    return [default_fix_model(voxel, device_type) if name == "auto" else name for name in models]


def _warm_up(engines: dict[str, Runner], shape: tuple[int, int]) -> None:
    """One small untimed pass per model, so lazy initialisation does not count in the timings."""
    side = min(128, *shape)
    zeros = np.zeros((side, side), dtype=np.float32)
    for engine in engines.values():
        if isinstance(engine, TiledInterpolator):
            engine.interpolate(zeros, zeros, [0.5])


class GridCases:
    """How a grid model (reslice) sees an evaluation run: the known sections around it, ``decimate`` apart, on
    rows as far apart as the pixels (``grid_repair``); defective sections and the dropped run are never used."""

    def __init__(self, vol: Volume, model: GridKind, decimate: int, defective: set[int]) -> None:
        from emrepair.engine.grid_repair import grid_ratio, repair_context

        self.vol, self.decimate, self.defective = vol, decimate, defective
        self.context = repair_context(model)
        self.ratio = grid_ratio(vol.info.voxel_size, decimate, int(model.config.max_factor))

    def predict(self, tiler: VolumeTiler, case: EvalCase, mapping: IntensityMap) -> list[np.ndarray]:
        """The run's sections in [0, 1] from the grid model."""
        from emrepair.engine.grid_repair import fill_gap, grid_layout, known_around

        known = known_around(case.left, case.right, self.decimate, self.context,
                             lambda z: z not in self.defective, self.vol.shape[0])
        rows, total, target_rows = grid_layout(known, list(case.targets), self.decimate, self.ratio)
        sections = [mapping.to_unit(self.vol.read_section(z)) for z in known]
        return fill_gap(tiler, sections, rows, total, target_rows)


def _score_case(vol: Volume, case: EvalCase, engines: dict[str, Runner], scores: dict[str, ModelScores],
                linear_outputs: list[tuple[float, np.ndarray, np.ndarray]],
                grids: dict[str, GridCases] | None = None) -> None:
    """Predict one run with every model (as ``fix`` would write it) and score it."""
    left, right = vol.read_section(case.left), vol.read_section(case.right)
    mapping = IntensityMap.for_sections([left, right])
    a, b = mapping.to_unit(left), mapping.to_unit(right)
    truths = [mapping.to_unit(vol.read_section(z)) for z in case.targets]
    megapixels = a.size * len(case.targets) / 1e6
    for name, engine in engines.items():
        tick = time.perf_counter()
        if grids and name in grids:
            images = grids[name].predict(engine, case, mapping)
        else:
            images = engine.interpolate(a, b, list(case.positions))
        scores[name].seconds += time.perf_counter() - tick
        scores[name].megapixels += megapixels
        for t, image, truth in zip(case.positions, images, truths):
            written = mapping.to_unit(mapping.from_unit(image))
            scores[name].add(t, psnr(written, truth), ssim(written, truth))
            if name == "linear":
                linear_outputs.append((t, written, truth))


def _best_blurred_linear(outputs: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[ModelScores, float | None]:
    """Gaussian-blur the linear predictions with the sigma that maximises their mean PSNR; score that."""
    from skimage.filters import gaussian

    blurred = ModelScores(name=BLURRED_LINEAR)
    if not outputs:
        return blurred, None
    best_sigma, best_psnr = BLUR_SIGMAS[0], -math.inf
    for sigma in BLUR_SIGMAS:
        mean_psnr = _mean([psnr(gaussian(pred, sigma=sigma, preserve_range=True), truth)
                           for _, pred, truth in outputs])
        if mean_psnr > best_psnr:
            best_sigma, best_psnr = sigma, mean_psnr
    for t, pred, truth in outputs:
        image = gaussian(pred, sigma=best_sigma, preserve_range=True)
        blurred.add(t, psnr(image, truth), ssim(image, truth))
    blurred.note = f"σ {best_sigma:g} px, tuned here"
    return blurred, best_sigma


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _finite(value: float) -> float | None:
    """Rounded for JSON; NaN and infinities (no data, identical images) become None."""
    return round(value, 4) if math.isfinite(value) else None
