"""The fix pipeline: synthesize every damaged section from its nearest good neighbours, write a new volume."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emrepair.errors import OutputError
from emrepair.pipelines.intensity import IntensityMap
from emrepair.pipelines.plan import RepairRun, plan_runs
from emrepair.pipelines.provenance import base_record

ProgressCallback = Callable[[int, int], None]
WarnCallback = Callable[[str], None]

# Learned models in order of measured quality; the first with weights present is the default.
PREFERRED_MODELS = ("ssan", "dan")
FALLBACK_MODEL = "flow"


@dataclass
class FixOptions:
    """Everything ``emrepair fix`` can be told, besides input and output."""

    model: str = "auto"
    sections: list[int] | None = None
    report_path: str | None = None
    masks_path: str | None = None
    summary_path: str | None = None
    dataset: str | None = None
    level: int | None = None
    tile_size: int | None = None
    overlap: int | None = None
    blend: str = "gaussian"
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    overwrite: bool = False
    dry_run: bool = False


@dataclass
class FixResult:
    """What a fix run did (or, for a dry run, would do)."""

    input: str
    output: str | None
    shape: tuple[int, int, int]
    model: str
    weights_sha256: str | None
    runs: list[RepairRun]
    tiles_per_section: int
    memory_estimate_bytes: int
    device: str
    dry_run: bool
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def synthesized(self) -> list[int]:
        """Every section whose pixels were synthesized."""
        return [z for run in self.runs for z in run.sections]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the run, as written by ``--save-report``."""
        return {
            "version": 1, "input": self.input, "output": self.output, "shape": list(self.shape),
            "model": self.model, "weights_sha256": self.weights_sha256, "device": self.device,
            "dry_run": self.dry_run, "synthesized": self.synthesized, "runs": [r.to_dict() for r in self.runs],
            "tiles_per_section": self.tiles_per_section, "memory_estimate_bytes": self.memory_estimate_bytes,
            "seconds": round(self.seconds, 3), "warnings": self.warnings,
        }


def default_model_name() -> str:
    """The best measured model that has trained weights, or the weight-free ``flow`` baseline."""
    from emrepair.models import list_models

    available = {spec.name: spec for spec in list_models()}
    for name in PREFERRED_MODELS:
        spec = available.get(name)
        if spec is not None and spec.has_weights():
            return name
    return FALLBACK_MODEL


def run_fix(
    input_path: str,
    output_path: str | None,
    options: FixOptions,
    *,
    progress: ProgressCallback | None = None,
    tile_progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> FixResult:
    """Repair the defective sections of ``input_path`` into a new volume at ``output_path``.

    Good sections are copied bit-identically; each run of defective sections is synthesized at t = j/(k+1)
    between its nearest good neighbours (copied from the single neighbour at a stack end, with a warning).

    ``progress(done, total)`` counts synthesized sections, ``tile_progress`` the tiles of the section pair at work.
    """
    from emrepair.engine import EngineConfig, TiledInterpolator, estimate_memory, resolve_device
    from emrepair.io import open_volume
    from emrepair.models import load_model
    from emrepair.pipelines.sections import defects_to_repair

    started = time.perf_counter()
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    if not options.dry_run and not output_path:
        raise OutputError("an output path is required (-o OUT), unless --dry-run")
    with open_volume(input_path, dataset=options.dataset, level=options.level) as vol:
        _refuse_same_path(input_path, output_path, vol.info.path)
        defects = defects_to_repair(vol, sections=options.sections, report_path=options.report_path)
        runs = plan_runs(defects, vol.shape[0])
        for run in runs:
            if run.one_sided:
                side = "start" if run.left is None else "end"
                note(f"sections {run.first}-{run.last} touch the {side} of the stack; "
                     f"they are copied from section {run.right if run.left is None else run.left}")
        model_name = default_model_name() if options.model == "auto" else options.model
        import warnings as _warnings

        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            device = resolve_device(options.device)
        for w in caught:
            note(str(w.message))
        model, meta = load_model(model_name, device=str(device))
        engine_config = EngineConfig(tile_size=options.tile_size, overlap=options.overlap, blend=options.blend,
                                     batch_size=options.batch_size, device=str(device), precision=options.precision)
        engine = TiledInterpolator(model, engine_config)
        tile_size = engine.tile_size_for(vol.shape[1:])
        tiles = engine.plan(vol.shape[1:])
        result = FixResult(
            input=str(input_path), output=str(output_path) if output_path else None, shape=vol.shape,
            model=meta.name if hasattr(meta, "name") else model_name,
            weights_sha256=getattr(meta, "weights_sha256", None), runs=runs, tiles_per_section=len(tiles),
            memory_estimate_bytes=int(estimate_memory(model, tile_size, options.batch_size)),
            device=str(device), dry_run=options.dry_run, warnings=warnings,
        )
        if options.dry_run:
            result.seconds = time.perf_counter() - started
            return result
        _write_repaired(vol, output_path, runs, engine, result, options, progress, tile_progress)
    result.seconds = time.perf_counter() - started
    if options.summary_path:
        Path(options.summary_path).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _refuse_same_path(input_path: str, output_path: str | None, resolved_input: str) -> None:
    if output_path is None:
        return
    out = Path(output_path).resolve()
    for candidate in (Path(input_path), Path(resolved_input)):
        if candidate and str(candidate) and out == candidate.resolve():
            raise OutputError(f"the output {output_path} is the input; emrepair never modifies its input")


def _write_repaired(vol: Any, output_path: str, runs: list[RepairRun], engine: Any, result: FixResult,
                    options: FixOptions, progress: ProgressCallback | None,
                    tile_progress: ProgressCallback | None) -> None:
    """Stream the volume into the output, replacing each run's sections by synthesized ones."""
    from emrepair.detect import KIND_LABELS
    from emrepair.io import create_output

    depth = vol.shape[0]
    provenance = base_record("fix", result.input)
    provenance.update({
        "model": result.model, "weights_sha256": result.weights_sha256,
        "synthesized_sections": result.synthesized,
        "synthesized_pixels": "whole section for every synthesized section",
        "runs": [r.to_dict() for r in runs],
        "engine": {"tile_size": engine.tile_size_for(vol.shape[1:]), "blend": options.blend,
                   "device": result.device, "precision": options.precision},
    })
    run_at = {run.first: run for run in runs}
    kinds = {z: kind for run in runs for z, kind in run.kinds.items()}
    total, done = len(kinds), 0
    pending: dict[int, np.ndarray] = {}
    masks = None
    try:
        with create_output(output_path, like=vol.info, overwrite=options.overwrite,
                           attrs={"emrepair": provenance}) as writer:
            if options.masks_path:
                masks = create_output(options.masks_path, like=vol.info, dtype=np.uint8, labels=True,
                                      overwrite=options.overwrite, attrs={"emrepair": provenance})
            for z in range(depth):
                if z in run_at:
                    # Only one run's sections are held at a time, so memory does not grow with the volume.
                    pending = _synthesize_run(vol, run_at[z], engine, tile_progress)
                if z in pending:
                    section = pending.pop(z)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                else:
                    section = vol.read_section(z)
                writer.write_section(z, section)
                if masks is not None:
                    label = KIND_LABELS.get(kinds[z], 1) if z in kinds else 0
                    masks.write_section(z, np.full(section.shape, label, dtype=np.uint8))
            if masks is not None:
                masks.commit()
                masks = None
    finally:
        if masks is not None:
            masks.abort()


def _synthesize_run(vol: Any, run: RepairRun, engine: Any,
                    tile_progress: ProgressCallback | None) -> dict[int, np.ndarray]:
    """Synthesize the sections of one run; returns {z: section in the stored dtype}."""
    if run.one_sided:
        source = vol.read_section(run.right if run.left is None else run.left)
        return {z: source.copy() for z in run.sections}
    left, right = vol.read_section(run.left), vol.read_section(run.right)
    mapping = IntensityMap.for_sections([left, right])
    images = engine.interpolate(mapping.to_unit(left), mapping.to_unit(right), run.positions(),
                                progress=tile_progress)
    return {z: mapping.from_unit(image) for z, image in zip(run.sections, images)}
