"""Cost of the output-safety checks on a real stack: the output guard, the writer lock and the per-block run check.

Repairs one section of a stack into a Zarr output (for scale), then times ``guard_outputs`` with ``--overwrite`` over
that emrepair output (its provenance is read), entering and leaving the writer lock of a progress folder, and the
check every block makes that the run record is still its own.

    python benchmarks/bench_output_safety.py [--stack ../shared/data/vnc_stack1.h5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from emrepair.io.output_guard import guard_outputs, target
from emrepair.pipelines.fix import FixOptions, run_fix
from emrepair.runstate import ProgressDir


def main() -> None:
    """Print the timings (one line each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=str(Path(__file__).resolve().parents[2] / "shared/data/vnc_stack1.h5"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.zarr"
        started = time.perf_counter()
        run_fix(args.stack, str(out), FixOptions(model="linear", fold_model="none", sections=[5]))
        print(f"fix --sections 5 --model linear into .zarr: {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        for _ in range(args.repeats):
            guard_outputs([args.stack], [target("-o", out), target("--save-report", Path(tmp) / "r.json", "json")],
                          overwrite=True)
        print(f"guard_outputs, --overwrite over the emrepair output: "
              f"{(time.perf_counter() - started) / args.repeats * 1e3:.1f} ms")
        state = ProgressDir(Path(tmp) / "x.emrepair-progress")
        started = time.perf_counter()
        for _ in range(args.repeats):
            with state.writing("x"):
                pass
        print(f"writer lock, enter and leave: {(time.perf_counter() - started) / args.repeats * 1e3:.2f} ms")
        state.save({"run_id": "a", "runs": [{"first": i, "last": i} for i in range(1000)]})
        started = time.perf_counter()
        for _ in range(10 * args.repeats):
            state.check_run("a")
        print(f"per-block run check, record of 1000 runs: "
              f"{(time.perf_counter() - started) / (10 * args.repeats) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
