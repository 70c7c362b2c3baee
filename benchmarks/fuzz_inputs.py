"""Generate malformed volumes and check that `emrepair info` and `emrepair detect` fail cleanly on each.

    python benchmarks/fuzz_inputs.py --cases 2000 --seed 1

Every case must exit 0, or exit 1/2 with a one-line ``error:`` and no traceback, within a time limit.
tests/test_fuzz_inputs.py runs a small number of cases of the same generator in CI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np
import tifffile
import zarr

Case = tuple[str, Path]


def _valid_files(root: Path, rng: np.random.Generator) -> dict[str, Path]:
    data = rng.integers(0, 255, size=(4, 24, 24), dtype=np.uint8)
    with h5py.File(root / "v.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(1, 24, 24), compression="gzip")
    tifffile.imwrite(root / "v.tif", data, imagej=True)
    zarr.open_array(str(root / "v.zarr"), mode="w", shape=data.shape, chunks=(2, 12, 12), dtype="uint8")[:] = data
    zarr.open_array(str(root / "v2.zarr"), mode="w", shape=data.shape, chunks=(2, 12, 12), dtype="uint8",
                    zarr_format=2)[:] = data
    return {"h5": root / "v.h5", "tif": root / "v.tif", "zarr": root / "v.zarr", "zarr2": root / "v2.zarr"}


def _mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(raw)
    how = rng.integers(0, 3)
    if how == 0 or not buf:  # truncate
        return bytes(buf[: int(rng.integers(0, max(1, len(buf))))])
    if how == 1:  # flip random bytes
        for _ in range(int(rng.integers(1, 16))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        return bytes(buf)
    start = int(rng.integers(0, len(buf)))  # overwrite a run with junk
    end = min(len(buf), start + int(rng.integers(1, 64)))
    buf[start:end] = rng.integers(0, 256, size=end - start, dtype=np.uint8).tobytes()
    return bytes(buf)


def _bad_metadata(meta: dict[str, Any], rng: np.random.Generator) -> Any:
    choice = int(rng.integers(0, 7))
    meta = json.loads(json.dumps(meta))
    if choice == 0:
        meta["shape"] = [10**12, 24, 24]
    elif choice == 1:
        meta["shape"] = [4, 10**9, 10**9]
    elif choice == 2:
        meta["shape"] = [0, 24, 24]
    elif choice == 3:
        meta["shape"] = [4, 24]
    elif choice == 4:
        meta["data_type" if "data_type" in meta else "dtype"] = rng.choice(["bool", "complex128", "nonsense", "<f8"])
    elif choice == 5:
        return "{not json"
    else:
        meta["chunks" if "chunks" in meta else "chunk_grid"] = [0, 0, 0]
    return meta


def generate(root: Path, count: int, seed: int) -> Iterator[Case]:
    """Yield ``count`` (description, path) bad inputs under ``root``, a fair mix of formats and faults."""
    rng = np.random.default_rng(seed)
    (root / "valid").mkdir(parents=True)
    valid = _valid_files(root / "valid", rng)
    makers: list[Callable[[int], Case]] = []

    def file_bytes(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}{valid[kind].suffix}"
            path.write_bytes(_mutate_bytes(valid[kind].read_bytes(), rng))
            return f"mutated {kind} bytes", path
        return make

    def zarr_chunk(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}.zarr"
            shutil.copytree(valid[kind], path)
            chunks = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".z", "zarr.json"))]
            target = chunks[int(rng.integers(0, len(chunks)))]
            target.write_bytes(_mutate_bytes(target.read_bytes(), rng))
            return f"corrupt {kind} chunk", path
        return make

    def zarr_meta(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}.zarr"
            shutil.copytree(valid[kind], path)
            meta_file = path / ("zarr.json" if kind == "zarr" else ".zarray")
            bad = _bad_metadata(json.loads(meta_file.read_text()), rng)
            meta_file.write_text(bad if isinstance(bad, str) else json.dumps(bad))
            return f"bad {kind} metadata", path
        return make

    def odd_arrays(i: int) -> Case:
        choice = int(rng.integers(0, 5))
        path = root / f"c{i:05d}.h5"
        with h5py.File(path, "w") as f:
            if choice == 0:
                f["raw"] = np.full((3, 16, 16), np.nan, dtype=np.float32)
            elif choice == 1:
                f["raw"] = np.zeros((0, 16, 16), dtype=np.uint8)
            elif choice == 2:
                f["raw"] = np.zeros((3, 16, 16), dtype=np.float64)
            elif choice == 3:
                f["raw"] = np.zeros((16, 16), dtype=np.uint8)
            else:
                f["raw"] = rng.integers(0, 2, size=(3, 1, 1)).astype(np.uint8)
        return "odd array", path

    def folder(i: int) -> Case:
        path = root / f"c{i:05d}"
        path.mkdir()
        tifffile.imwrite(path / "a.tif", np.zeros((16, 16), np.uint8))
        other = [np.zeros((8, 8), np.uint8), np.zeros((16, 16), np.uint16), np.zeros((2, 16, 16), np.uint8)]
        tifffile.imwrite(path / "b.tif", other[int(rng.integers(0, 3))])
        (path / "c.tif").write_bytes(_mutate_bytes((valid["tif"]).read_bytes()[:300], rng))
        return "inconsistent folder", path

    makers += [file_bytes("h5"), file_bytes("tif"), zarr_chunk("zarr"), zarr_chunk("zarr2"),
               zarr_meta("zarr"), zarr_meta("zarr2"), odd_arrays, folder]
    for i in range(count):
        yield makers[i % len(makers)](i)


class Hang(Exception):
    """A command ran past its time limit."""


def check_case(path: Path, command: str, limit_s: float) -> str | None:
    """Run one CLI command on ``path`` in-process; None when it behaved, else what went wrong."""
    from typer.testing import CliRunner

    from emrepair.cli.app import app

    args = [command, str(path)] + (["--no-progress"] if command == "detect" else [])

    def alarm(signum: int, frame: Any) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        result = CliRunner().invoke(app, args)
    except Hang:
        return f"hang over {limit_s} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, Hang):
        return f"hang over {limit_s} s"
    text = result.stderr
    if result.exit_code == 0:
        return None
    if result.exit_code not in (1, 2):
        return f"exit {result.exit_code}: {text[-300:]!r}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if "Traceback" in text or not lines or not lines[0].startswith("error:"):
        return f"not a one-line error: {text[-300:]!r}"
    if "EMREPAIR_DEBUG" in text:
        return f"unexpected exception: {lines[0]}"
    return None


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=10.0, help="seconds per command")
    args = parser.parse_args()
    failures = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for what, path in generate(Path(tmp), args.cases, args.seed):
            for command in ("info", "detect"):
                problem = check_case(path, command, args.limit)
                if problem:
                    failures += 1
                    print(f"FAIL {command} {what} {path.name}: {problem}")
    print(f"{args.cases} cases x 2 commands, {failures} failures, {time.perf_counter() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
