"""Record or compare detect_volume's reports on a fixed set of cases, to prove a speed change leaves results alone.

Cases: all real stacks of ../shared/data with and without ``DamageConfig()``; family-B folds in the held-out
sections of three stacks; the partial-damage sections of ``bench_partial.py`` (seed 0, every fill and shape); the
precipitate and contrast sections of ``bench_precipitates.py`` (seed 0, two per stack). Each case keeps the report's
JSON and a digest of every section's mask.

    python benchmarks/detect_identity.py record before.json [--data ../shared/data]
    python benchmarks/detect_identity.py compare before.json [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_partial
import bench_precipitates
from bench_detect import inject_b

from emrepair.detection import detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.io import ArrayVolume, open_volume
from emrepair.simulate.damage import simulate_contrast, simulate_precipitates

FAMILY_B = ("isbi2012_train.h5", "vnc_stack1.h5", "neuroproof_medulla_train1.h5")


def _entry(report) -> dict:
    """The report's JSON form and a digest of each section's mask."""
    masks = {}
    for z in sorted({d.z for d in report.defects + report.marks}):
        masks[str(z)] = hashlib.sha1(np.ascontiguousarray(report.mask(z)).tobytes()).hexdigest()
    return {"report": json.loads(json.dumps(report.to_dict(), sort_keys=True)), "masks": masks}


def cases(data: Path):
    """(name, callable returning a DetectionReport) of every case."""
    for path in sorted(data.glob("*.h5")):
        for label, damage in (("plain", None), ("damage", DamageConfig())):
            def run(path=path, damage=damage):
                with open_volume(path) as vol:
                    return detect_volume(vol, damage=damage)
            yield f"{path.name}/{label}", run
    rng_b = np.random.default_rng(1000)
    for name in FAMILY_B:
        with h5py.File(data / name, "r") as f:
            raw = f["raw"][:]
        stack = inject_b(raw, rng_b)[0]
        yield f"{name}/familyB", lambda stack=stack: detect_volume(ArrayVolume(stack), damage=DamageConfig())
    rng = np.random.default_rng(0)
    combos = [(f, s) for f in bench_partial.FILLS for s in bench_partial.SHAPES]
    i = 0
    for name, z, section in bench_partial._sections(data):
        for fraction in bench_partial.FRACTIONS:
            fill, shape = combos[i % len(combos)]
            i += 1
            damaged = bench_partial.damage(section, fill, shape, fraction, rng)[0]
            yield f"partial/{name}/{z}/{fraction}", lambda d=damaged: detect_volume(ArrayVolume(d[None]))
    rng = np.random.default_rng(0)
    for name, z, stack in bench_precipitates.held_out(data, 2):
        for kind in ("precipitate", "contrast"):
            damaged = stack.copy()
            damaged[1] = (simulate_precipitates if kind == "precipitate" else simulate_contrast)(stack[1], rng).image
            yield f"{kind}/{name}/{z}", lambda d=damaged: detect_volume(ArrayVolume(d), damage=DamageConfig())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = parser.parse_args()
    results, seconds = {}, 0.0
    for name, run in cases(args.data):
        start = time.process_time()
        results[name] = _entry(run())
        seconds += time.process_time() - start
    if args.mode == "record":
        args.file.write_text(json.dumps(results, sort_keys=True))
        print(f"recorded {len(results)} cases, detection CPU {seconds:.1f} s")
        return
    before = json.loads(args.file.read_text())
    differ = [k for k in sorted(set(before) | set(results)) if before.get(k) != results.get(k)]
    print(f"{len(results)} cases, {len(differ)} differ, detection CPU {seconds:.1f} s")
    for k in differ:
        print("  differs:", k)
    raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
