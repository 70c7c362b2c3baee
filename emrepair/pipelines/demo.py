"""``emrepair demo``: detect and repair the bundled sample stack, and show the result beside the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.errors import OutputError

SAMPLE_NAME = "sample.h5"


def sample_path() -> Path:
    """Path of the bundled sample (NeuroProof FIB-SEM, CC BY, decimated to 40 nm, with simulated defects)."""
    return Path(str(resources.files("emrepair") / "data" / SAMPLE_NAME))


@dataclass
class DemoSummary:
    """Where the demo wrote its outputs and how close the repair came to the truth."""

    out_dir: Path
    model: str
    found: list[tuple[int, str]]
    truth: list[tuple[int, str]]
    psnr: dict[int, tuple[float, float]] = field(default_factory=dict)  # z -> (repair, linear)
    method: dict[int, str] = field(default_factory=dict)  # z -> model that repaired it

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [f"bundled sample: simulated defects {self._fmt(self.truth)}; detected {self._fmt(self.found)}"]
        for z, (ours, lin) in sorted(self.psnr.items()):
            lines.append(f"  section {z}: PSNR against the truth {ours:.2f} dB with {self.method.get(z, self.model)} "
                         f"(linear interpolation {lin:.2f} dB)")
        lines.append(f"wrote {self.out_dir}/repaired.h5, detect.json, masks.h5, fix.json, before_after.png")
        return "\n".join(lines)

    @staticmethod
    def _fmt(items: list[tuple[int, str]]) -> str:
        return ", ".join(f"{kind} at {z}" for z, kind in items) or "none"


def run_demo(out_dir: str | Path, *, overwrite: bool = True, model: str = "auto",
             progress: ProgressCallback | None = None, warn: WarnCallback | None = None) -> DemoSummary:
    """Run detect and fix on the bundled sample; write the outputs and a before/after picture into ``out_dir``."""
    import h5py

    from emrepair.pipelines.detect import run_detect
    from emrepair.pipelines.fix import FixOptions, run_fix

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    sample = sample_path()
    source = f"{sample}/raw"
    report = run_detect(source, report_path=out / "detect.json", masks_path=str(out / "masks.h5"),
                        overwrite=overwrite, progress=progress)
    options = FixOptions(model=model, report_path=str(out / "detect.json"), summary_path=str(out / "fix.json"),
                         overwrite=overwrite)
    result = run_fix(source, str(out / "repaired.h5"), options, progress=progress, warn=warn)
    with h5py.File(sample, "r") as f:
        truth_defects = [(int(z), str(k)) for z, k in zip(f["raw"].attrs["defect_z"], f["raw"].attrs["defect_kind"])]
        raw, truth = f["raw"][:], f["truth"][:]
    with h5py.File(out / "repaired.h5", "r") as f:
        repaired = f["raw"][:]
    summary = DemoSummary(out, result.model, [(d.z, d.kind) for d in report.defects], truth_defects)
    fold_repaired = set(result.fold_repaired)
    for run in result.runs:
        for z, t in zip(run.sections, run.positions()):
            if z in fold_repaired:
                summary.method[z] = f"{result.fold_model} (fold-aware)"
            if "region" in run.folds.get(z, {}):
                summary.method[z] = f"{result.model} in the lost region only (the intact part kept)"
            if run.one_sided:
                continue
            linear = (1 - t) * raw[run.left].astype(np.float64) + t * raw[run.right].astype(np.float64)
            summary.psnr[z] = (psnr(repaired[z], truth[z]), psnr(linear, truth[z]))
    # every simulated defect gets a row, so a defect detection missed shows as left unrepaired
    shown = sorted(set(result.synthesized) | {z for z, _ in truth_defects})
    write_before_after(out / "before_after.png", raw, repaired, truth, shown, set(result.synthesized))
    return summary


def psnr(image: np.ndarray, reference: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of one shape."""
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def write_before_after(path: Path, raw: np.ndarray, repaired: np.ndarray, truth: np.ndarray,
                       sections: list[int], changed: set[int] | None = None) -> None:
    """A PNG with one row per section: damaged input | emrepair's repair | the truth; a section not in
    ``changed`` (when given) is labelled as left as it was."""
    import cv2

    rows = []
    for z in sections:
        tiles = []
        done = "repaired" if changed is None or z in changed else "not repaired"
        for label, image in (("input", raw[z]), (done, repaired[z]), ("truth", truth[z])):
            tile = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 22), (0, 0, 0), -1)
            cv2.putText(tile, f"z={z} {label}", (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(tile)
            tiles.append(np.full((tile.shape[0], 4, 3), 255, np.uint8))
        rows.append(np.hstack(tiles[:-1]))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    if rows:
        cv2.imwrite(str(path), np.vstack(rows[:-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
