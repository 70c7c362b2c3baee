"""The bad inputs of benchmarks/fuzz_inputs.py: formats x corruption kinds, each a seeded maker.

A maker writes one input under a root folder and returns a :class:`Case`: its category, the path the commands get,
extra arguments, and whether an error is required (a folder with an unreadable section must never give exit 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import tifffile
import zarr
from PIL import Image

SIZE = 24


@dataclass
class Case:
    """One fuzz input: what it is, where, and what a correct run must do with it."""

    category: str
    path: Path
    args: list[str] = field(default_factory=list)
    must_fail: bool = False  # exit 0 is wrong: e.g. a folder entry skipped silently
    names: str | None = None  # a name the error message must contain (the bad entry)


def smooth(rng: np.random.Generator, depth: int = 4, size: int = SIZE) -> np.ndarray:
    """Smooth sections drifting slowly in z (none looks defective)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ph = rng.uniform(0, 2 * np.pi, 2)
    unit = np.stack([np.sin(xx / 5 + ph[0] + 0.2 * z) + np.cos(yy / 7 + ph[1] - 0.15 * z) for z in range(depth)])
    return np.round(30 + 190 * (unit - unit.min()) / (unit.max() - unit.min())).astype(np.uint8)


def valid_files(root: Path, rng: np.random.Generator) -> dict[str, Path]:
    """One good input per format, the material the makers damage."""
    root.mkdir(parents=True)
    data = smooth(rng)
    with h5py.File(root / "v.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(1, SIZE, SIZE), compression="gzip")
    tifffile.imwrite(root / "v.tif", data, imagej=True)
    zarr.open_array(str(root / "v.zarr"), mode="w", shape=data.shape, chunks=(2, 12, 12), dtype="uint8")[:] = data
    zarr.open_array(str(root / "v2.zarr"), mode="w", shape=data.shape, chunks=(2, 12, 12), dtype="uint8",
                    zarr_format=2)[:] = data
    g = zarr.open_group(str(root / "v.ome.zarr"), mode="w", zarr_format=2)
    g.create_array("0", shape=data.shape, chunks=(2, SIZE, SIZE), dtype="uint8")[:] = data
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": n, "type": "space", "unit": "nanometer"}
                                                          for n in "zyx"],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [40.0, 4.0, 4.0]}]}]}]
    (root / "pngs").mkdir()
    for z in range(len(data)):
        Image.fromarray(data[z]).save(root / "pngs" / f"s{z:03d}.png")
    return {"h5": root / "v.h5", "tif": root / "v.tif", "zarr": root / "v.zarr", "zarr2": root / "v2.zarr",
            "ome": root / "v.ome.zarr", "pngs": root / "pngs"}


def mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    """Truncate, flip random bytes, or overwrite a run with junk."""
    buf = bytearray(raw)
    how = rng.integers(0, 3)
    if how == 0 or not buf:
        return bytes(buf[: int(rng.integers(0, max(1, len(buf))))])
    if how == 1:
        for _ in range(int(rng.integers(1, 16))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        return bytes(buf)
    start = int(rng.integers(0, len(buf)))
    end = min(len(buf), start + int(rng.integers(1, 64)))
    buf[start:end] = rng.integers(0, 256, size=end - start, dtype=np.uint8).tobytes()
    return bytes(buf)


def bad_array_metadata(meta: dict[str, Any], rng: np.random.Generator) -> Any:
    """A Zarr .zarray / zarr.json with one field broken."""
    choice = int(rng.integers(0, 8))
    meta = json.loads(json.dumps(meta))
    if choice == 0:
        meta["shape"] = [10**12, SIZE, SIZE]
    elif choice == 1:
        meta["shape"] = [4, 10**9, 10**9]
    elif choice == 2:
        meta["shape"] = [0, SIZE, SIZE]
    elif choice == 3:
        meta["shape"] = [4, SIZE]
    elif choice == 4:
        meta["data_type" if "data_type" in meta else "dtype"] = str(rng.choice(["bool", "complex128", "nonsense", "<f8"]))
    elif choice == 5:
        return "{not json"
    elif choice == 6:
        meta["shape"] = "four"
    else:
        meta["chunks" if "chunks" in meta else "chunk_grid"] = [0, 0, 0]
    return meta


OME_BREAKS: list[Callable[[list[Any]], Any]] = [
    lambda ms: "not a list",
    lambda ms: ["a string"],
    lambda ms: [{**ms[0], "datasets": []}],
    lambda ms: [{**ms[0], "datasets": [{"coordinateTransformations": []}]}],
    lambda ms: [{**ms[0], "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                                  "scale": ["x", 1, 1]}]}]}],
    lambda ms: [{**ms[0], "axes": [{"unit": "nm"}, "y", "x"]}],
    lambda ms: [{**ms[0], "axes": ["c", "y", "x"]}],
    lambda ms: [{**ms[0], "datasets": [{"path": "missing"}]}],
    lambda ms: [{**ms[0], "datasets": [{"path": 5}]}],
    lambda ms: [{**ms[0], "coordinateTransformations": "scale"}],
    lambda ms: [],
    lambda ms: [{**ms[0], "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                                  "scale": [0, -1, 1e309]}]}]}],
]

FOLDER_ENTRY_KINDS = ("dangling", "loop", "fifo", "devzero", "folder", "garbage", "truncated_png", "empty")


def _chunk_files(store: Path) -> list[Path]:
    meta = (".zarray", ".zattrs", ".zgroup", "zarr.json")
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name not in meta)


def makers(root: Path, valid: dict[str, Path], rng: np.random.Generator) -> list[Callable[[int], Case]]:
    """Every maker, in a fixed order; case i uses maker i % len(makers)."""

    def file_bytes(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}{valid[kind].suffix}"
            path.write_bytes(mutate_bytes(valid[kind].read_bytes(), rng))
            return Case(f"mutated {kind} bytes", path)
        return make

    def zarr_chunk(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}.zarr"
            shutil.copytree(valid[kind], path)
            chunks = _chunk_files(path)
            target = chunks[int(rng.integers(0, len(chunks)))]
            target.write_bytes(mutate_bytes(target.read_bytes(), rng))
            return Case(f"corrupt {kind} chunk", path)
        return make

    def zarr_meta(kind: str) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            path = root / f"c{i:05d}.zarr"
            shutil.copytree(valid[kind], path)
            meta_file = path / ("zarr.json" if kind == "zarr" else ".zarray")
            bad = bad_array_metadata(json.loads(meta_file.read_text()), rng)
            meta_file.write_text(bad if isinstance(bad, str) else json.dumps(bad))
            return Case(f"bad {kind} metadata", path)
        return make

    def ome_meta(i: int) -> Case:
        path = root / f"c{i:05d}.ome.zarr"
        shutil.copytree(valid["ome"], path)
        attrs = json.loads((path / ".zattrs").read_text())
        attrs["multiscales"] = OME_BREAKS[int(rng.integers(0, len(OME_BREAKS)))](attrs["multiscales"])
        (path / ".zattrs").write_text(json.dumps(attrs))
        return Case("malformed OME-NGFF metadata", path)

    def odd_arrays(i: int) -> Case:
        choice = int(rng.integers(0, 5))
        path = root / f"c{i:05d}.h5"
        with h5py.File(path, "w") as f:
            f["raw"] = [np.full((3, 16, 16), np.nan, np.float32), np.zeros((0, 16, 16), np.uint8),
                        np.zeros((3, 16, 16), np.float64), np.zeros((16, 16), np.uint8),
                        rng.integers(0, 2, size=(3, 1, 1)).astype(np.uint8)][choice]
        return Case("odd array", path)

    def folder(i: int) -> Case:
        path = root / f"c{i:05d}"
        path.mkdir()
        tifffile.imwrite(path / "a.tif", np.zeros((16, 16), np.uint8))
        other = [np.zeros((8, 8), np.uint8), np.zeros((16, 16), np.uint16), np.zeros((2, 16, 16), np.uint8)]
        tifffile.imwrite(path / "b.tif", other[int(rng.integers(0, 3))])
        (path / "c.tif").write_bytes(mutate_bytes(valid["tif"].read_bytes()[:300], rng))
        return Case("inconsistent folder", path, must_fail=True)

    def folder_entry(i: int) -> Case:
        path = root / f"c{i:05d}"
        shutil.copytree(valid["pngs"], path)
        kind = FOLDER_ENTRY_KINDS[int(rng.integers(0, len(FOLDER_ENTRY_KINDS)))]
        entry = path / "s001b.png"
        if kind == "dangling":
            entry.symlink_to(path / "gone.png")
        elif kind == "loop":
            entry.symlink_to(entry)
        elif kind == "fifo":
            os.mkfifo(entry)
        elif kind == "devzero":
            entry.symlink_to("/dev/zero")
        elif kind == "folder":
            entry.mkdir()
        elif kind == "garbage":
            entry.write_bytes(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
        elif kind == "truncated_png":
            entry.write_bytes((path / "s001.png").read_bytes()[: int(rng.integers(8, 40))])
        else:
            entry.write_bytes(b"")
        return Case(f"folder entry: {kind}", path, must_fail=True, names=entry.name)

    def special_input(i: int) -> Case:
        choice = int(rng.integers(0, 5))
        if choice < 2:  # the input itself is a FIFO
            path = root / f"c{i:05d}{('.tif', '.h5')[choice]}"
            os.mkfifo(path)
            return Case("FIFO input", path, must_fail=True)
        if choice == 2:
            path = root / f"c{i:05d}.h5"
            path.symlink_to("/dev/zero")
            return Case("/dev/zero input", path, must_fail=True)
        path = root / f"c{i:05d}.zarr"  # a FIFO as a chunk, or as metadata
        shutil.copytree(valid["zarr2" if choice == 3 else "zarr"], path)
        target = _chunk_files(path)[0] if choice == 3 else path / "zarr.json"
        target.unlink()
        os.mkfifo(target)
        return Case("FIFO in a Zarr store", path, must_fail=True)

    def sparse_zarr(i: int) -> Case:
        path = root / f"c{i:05d}.zarr"
        depth = int(rng.choice([2_000, 200_000]))
        arr = zarr.open_array(str(path), mode="w", shape=(depth, 16, 16), chunks=(1, 16, 16), dtype="uint8")
        arr[int(rng.integers(0, 4))] = smooth(rng, 1, 16)[0]
        return Case(f"{depth} declared sections, 1 written", path)

    def gzip_chunk(i: int) -> Case:
        if rng.integers(0, 2):
            path = root / f"c{i:05d}.h5"
            shutil.copy(valid["h5"], path)
            with h5py.File(path, "r") as f:
                info = f["raw"].id.get_chunk_info(int(rng.integers(0, 4)))
            with open(path, "r+b") as fh:
                fh.seek(info.byte_offset + 2)
                fh.write(b"\xff" * min(16, info.size - 2))
            return Case("corrupt gzip HDF5 chunk", path)
        from zarr.codecs import GzipCodec

        path = root / f"c{i:05d}.zarr"
        arr = zarr.create_array(str(path), shape=(4, SIZE, SIZE), chunks=(1, SIZE, SIZE), dtype="uint8",
                                compressors=GzipCodec())
        arr[:] = smooth(rng)
        target = _chunk_files(path)[int(rng.integers(0, 4))]
        target.write_bytes(target.read_bytes()[:10] + b"\xff" * 20)
        return Case("corrupt gzip Zarr chunk", path)

    def no_permission(i: int) -> Case:
        kind = ["h5", "tif", "pngs", "zarr"][int(rng.integers(0, 4))]
        path = root / f"c{i:05d}{valid[kind].suffix}"
        (shutil.copytree if valid[kind].is_dir() else shutil.copy)(valid[kind], path)
        target = _chunk_files(path)[0] if kind == "zarr" else path
        target.chmod(0)
        return Case(f"no read permission ({kind})", path)

    def markup_path(i: int) -> Case:
        name = ["br[/x]vol", "[bold]v[/bold]", "a[red]b", "x]y[z"][int(rng.integers(0, 4))]
        kind = ["h5", "zarr"][int(rng.integers(0, 2))]
        path = root / f"c{i:05d}{name}{valid[kind].suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if valid[kind].is_dir() else shutil.copy)(valid[kind], path)
        return Case("markup in the path", path)

    return [file_bytes("h5"), file_bytes("tif"), zarr_chunk("zarr"), zarr_chunk("zarr2"), zarr_meta("zarr"),
            zarr_meta("zarr2"), ome_meta, odd_arrays, folder, folder_entry, special_input, sparse_zarr,
            gzip_chunk, no_permission, markup_path]


def snapshot(path: Path) -> dict[str, Any]:
    """What is on disk under ``path`` (never opening anything but regular files): to prove inputs unchanged."""
    out: dict[str, Any] = {}
    items = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink() else [])
    for p in items:
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if os.access(p, os.R_OK) else None
            out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
        elif stat.S_ISLNK(st.st_mode):
            out[str(p)] = ("link", os.readlink(p))
        else:
            out[str(p)] = (st.st_mode,)
    return out
