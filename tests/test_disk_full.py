"""A full disk is a one-line OutputError with a resumable partial output, on every format; never a signal death.

Writers that fail on purpose (monkeypatched) cover every format quickly; a real small file system (a 10 MiB
tmpfs, when this runs as root and may mount one; skipped otherwise) checks that nothing dies of SIGBUS or
SIGSEGV when the disk really fills, and that --continue finishes once there is room.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import pytest

from emrepair.errors import OutputError
from emrepair.io import create_output, open_volume
from emrepair.io.space import SKIP_ENV, check_free_space, estimated_bytes
from emrepair.io.writers.hdf5_writer import HDF5Writer
from emrepair.io.writers.tiff_writer import TiffFolderWriter, TiffStackWriter
from emrepair.io.writers.zarr_writer import ZarrWriter
from emrepair.pipelines.fix import FixOptions, run_fix
from emrepair.pipelines.inplace import backup_dir_for, run_fix_in_place
from helpers import read_all, smooth_stack, textured_stack, write_h5

WRITERS = {"out.h5": HDF5Writer, "out.zarr": ZarrWriter, "out.tif": TiffStackWriter, "outdir": TiffFolderWriter}


def options(**extra: Any) -> FixOptions:
    return FixOptions(model="linear", fold_model="none", sections=[3, 9], device="cpu", **extra)


@pytest.mark.parametrize("name", list(WRITERS))
def test_write_error_is_one_line_and_resumable(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = textured_stack(14, 32)
    src = write_h5(tmp_path / "in.h5", data)
    reference = tmp_path / f"ref-{name}"
    run_fix(src, str(reference), options())
    cls = WRITERS[name]
    real_write = cls._write
    calls = [0]

    def failing(self: Any, *args: Any) -> None:
        calls[0] += 1
        if calls[0] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, *args)

    monkeypatch.setattr(cls, "_write", failing)
    out = tmp_path / name
    with pytest.raises(OutputError) as caught:
        run_fix(src, str(out), options())
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "--continue" in message
    assert not out.exists() and any(p.name.startswith(f".{name}") for p in tmp_path.iterdir())
    monkeypatch.setattr(cls, "_write", real_write)
    run_fix(src, str(out), options(continue_run=True))
    np.testing.assert_array_equal(read_all(out), read_all(reference))


def test_space_check_refuses_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_volume(write_h5(tmp_path / "in.h5", textured_stack(6, 32))) as vol:
        info = vol.info
    assert estimated_bytes("tiff", (10, 100, 100), "uint16") == 200_000 + (1 << 20)
    assert estimated_bytes("zarr", (10, 100, 100), "uint8") < estimated_bytes("tiff", (10, 100, 100), "uint8")
    monkeypatch.setattr("emrepair.io.space.free_bytes", lambda folder: 1000)
    with pytest.raises(OutputError, match="not enough free space"):
        create_output(tmp_path / "out.tif", like=info)
    assert list(tmp_path.iterdir()) == [tmp_path / "in.h5"]
    monkeypatch.setenv(SKIP_ENV, "1")
    check_free_space(tmp_path, 10**15)  # skipped on request
    create_output(tmp_path / "out.tif", like=info).abort()


def test_backup_cut_short_leaves_no_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = textured_stack(14, 32)
    src = write_h5(tmp_path / "in.h5", data)
    real_save = np.save
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing)
    with pytest.raises(OutputError, match="the input was not changed"):
        run_fix_in_place(src, options())
    assert calls[0] == 2 and not backup_dir_for(src).exists()
    np.testing.assert_array_equal(read_all(src), data)
    monkeypatch.setattr(np, "save", real_save)
    run_fix_in_place(src, options())  # nothing blocks a later run
    assert backup_dir_for(src).is_dir()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 10 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


RUN = """
import sys
from emrepair.errors import EmrepairError
from emrepair.pipelines.fix import FixOptions, run_fix
try:
    run_fix(sys.argv[1], sys.argv[2], FixOptions(model="linear", fold_model="none", sections=[3], device="cpu",
                                                 continue_run=sys.argv[3] == "1"))
except EmrepairError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.parametrize("name", list(WRITERS))
def test_real_full_disk(tmp_path: Path, small_fs: Path, name: str) -> None:
    data = np.random.default_rng(0).integers(0, 255, (48, 512, 512), dtype=np.uint8)  # 12 MiB, incompressible
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("raw", data=data, chunks=(4, 128, 128), compression="gzip")
    out = small_fs / name
    env = {**os.environ, SKIP_ENV: "1"}  # past the free-space check, into the full disk
    first = subprocess.run([sys.executable, "-c", RUN, str(src), str(out), "0"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 1, (first.returncode, first.stderr[-2000:])  # not SIGBUS (-7) nor SIGSEGV (-11)
    assert len(first.stderr.strip().splitlines()) == 1 and "No space left on device" in first.stderr
    assert not out.exists()
    if name != "out.tif":  # a preallocated stack fails before any pixel: nothing to resume, nothing left
        assert any(p.name.startswith(f".{name}") for p in small_fs.iterdir())
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    again = subprocess.run([sys.executable, "-c", RUN, str(src), str(out), "1"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    expected = data.copy()
    expected[3] = np.round((data[2].astype(np.float32) + data[4]) / 2).astype(np.uint8)
    got = read_all(out)
    np.testing.assert_array_equal(np.delete(got, 3, axis=0), np.delete(data, 3, axis=0))
    assert np.abs(got[3].astype(int) - expected[3]).max() <= 1


def test_in_place_write_error_keeps_a_complete_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = textured_stack(14, 32)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(4, 16, 16), compression="gzip")
    src = str(tmp_path / "in.h5")
    real_set = h5py.Dataset.__setitem__
    calls = [0]

    def failing(self: Any, key: Any, value: Any) -> None:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_set(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(OutputError) as caught:
        run_fix_in_place(src, options())
    message = str(caught.value)
    assert "\n" not in message and "No space left" in message and "--undo" in message and "--continue" in message
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real_set)
    assert not list(tmp_path.glob(".*reserve"))  # the space reserve went with the failed writer
    run_fix_in_place(src, options(continue_run=True))
    repaired = read_all(src)
    assert not np.array_equal(repaired, data)
    from emrepair.pipelines.inplace import undo_in_place

    assert undo_in_place(src) == [3, 9]
    np.testing.assert_array_equal(read_all(src), data)


def test_backup_on_a_full_disk(tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.random.default_rng(1).integers(0, 255, (28, 512, 512), dtype=np.uint8)  # 7 MiB
    src = small_fs / "in.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("raw", data=data, chunks=(16, 128, 128), compression="gzip")
    with pytest.raises(OutputError, match="not enough free space for the backup"):  # 16 sections: 4 MiB
        run_fix_in_place(str(src), options())
    assert not backup_dir_for(src).exists()
    monkeypatch.setenv(SKIP_ENV, "1")
    with pytest.raises(OutputError, match="No space left on device.*the input was not changed"):
        run_fix_in_place(str(src), options())
    assert not backup_dir_for(src).exists()
    np.testing.assert_array_equal(read_all(src), data)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    run_fix_in_place(str(src), options())
    from emrepair.pipelines.inplace import undo_in_place

    undo_in_place(str(src))
    np.testing.assert_array_equal(read_all(src), data)


def test_resumed_output_counts_what_it_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.io.space import check_output_space, used_bytes

    partial = tmp_path / "partial"
    partial.mkdir()
    for i in range(3):
        (partial / f"c{i}").write_bytes(b"x" * 100_000)
    assert used_bytes(partial) >= 300_000 and used_bytes(partial, max_files=2) is None
    need = estimated_bytes("tiff", (1, 1000, 1000), "uint8")
    monkeypatch.setattr("emrepair.io.space.free_bytes", lambda folder: need - 200_000)
    check_output_space(tmp_path / "out.tif", "tiff", (1, 1000, 1000), "uint8", partial=partial)  # fits
    with pytest.raises(OutputError, match="needs about"):
        check_output_space(tmp_path / "out.tif", "tiff", (1, 1000, 1000), "uint8")


@pytest.mark.parametrize("name", ["out.h5", "out.zarr", "outdir"])
def test_full_disk_at_commit_keeps_the_output_resumable(tmp_path: Path, name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = textured_stack(14, 32)
    src = write_h5(tmp_path / "in.h5", data)
    reference = tmp_path / f"ref-{name}"
    run_fix(src, str(reference), options())
    cls = WRITERS[name]
    real_finish = cls._finish

    def failing(self: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cls, "_finish", failing)
    out = tmp_path / name
    with pytest.raises(OutputError, match="No space left on device"):
        run_fix(src, str(out), options())
    assert not out.exists() and any(p.name.startswith(f".{name}") for p in tmp_path.iterdir())
    monkeypatch.setattr(cls, "_finish", real_finish)
    run_fix(src, str(out), options(continue_run=True))
    np.testing.assert_array_equal(read_all(out), read_all(reference))


def test_ome_zarr_estimate_counts_the_pyramid_and_the_embedded_masks() -> None:
    shape, level0 = (4, 2048, 2048), 4 * 2048 * 2048
    plain = estimated_bytes("zarr", shape, "uint8") - (1 << 20)
    ome = estimated_bytes("ome-zarr", shape, "uint8") - (1 << 20)
    assert plain == int(0.7 * level0)
    # levels 1-3 (1024, 512, 256 px) add 1/4 + 1/16 + 1/64 of level 0, about a third
    assert ome == int(0.7 * level0 * (1 + 1 / 4 + 1 / 16 + 1 / 64))
    with_masks = estimated_bytes("ome-zarr", shape, "uint8", embedded_labels=True) - (1 << 20)
    assert with_masks - ome == pytest.approx(0.05 * level0 * (1 + 1 / 4 + 1 / 16 + 1 / 64), abs=2)
    assert estimated_bytes("zarr", shape, "uint8", embedded_labels=True) - (1 << 20) == plain  # only OME images
    assert estimated_bytes("ome-zarr", (4, 300, 300), "uint16") == estimated_bytes("zarr", (4, 300, 300), "uint16")


def test_outputs_on_one_disk_are_counted_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.io.space import PlannedOutput, check_outputs_space

    image = PlannedOutput(tmp_path / "out.ome.zarr", "ome-zarr", (4, 2048, 2048), "uint8", embedded_labels=True)
    masks = PlannedOutput(tmp_path / "m.h5", "hdf5", (4, 2048, 2048), "uint8", labels=True)
    need = [estimated_bytes("ome-zarr", image.shape, "uint8", embedded_labels=True),
            estimated_bytes("hdf5", masks.shape, "uint8", labels=True)]
    monkeypatch.setattr("emrepair.io.space.free_bytes", lambda folder: sum(need) - 1)
    check_outputs_space([image])
    check_outputs_space([masks])
    with pytest.raises(OutputError, match=r"the outputs .*out\.ome\.zarr and .*m\.h5: they need about"):
        check_outputs_space([image, masks])
    monkeypatch.setattr("emrepair.io.space.free_bytes", lambda folder: sum(need))
    check_outputs_space([image, masks])


@pytest.mark.parametrize("command", ["upsample-z", "fix"])
def test_refuses_an_ome_zarr_that_fits_only_without_its_pyramid_and_masks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    from typer.testing import CliRunner

    from emrepair.cli.app import app

    monkeypatch.setattr("emrepair.io.ome.PYRAMID_MIN_PX", 16)  # 64 px sections get levels of 32 and 16 px
    src = write_h5(tmp_path / "in.h5", smooth_stack(3, 64))
    out, masks = tmp_path / "up.ome.zarr", tmp_path / "m.h5"
    if command == "fix":
        shape = (3, 64, 64)
        args = ["fix", src, "--sections", "1", "--model", "linear", "--fold-model", "none", "--no-progress",
                "-o", str(out)]
    else:
        shape = (5, 64, 64)
        args = ["upsample-z", src, "--factor", "2", "--model", "linear", "--no-repair", "--no-progress",
                "-o", str(out)]

    def run_with(free: int, *extra: str) -> Any:
        monkeypatch.setattr("emrepair.io.space.free_bytes", lambda folder: free)
        return CliRunner().invoke(app, [*args, *extra])

    level0 = estimated_bytes("zarr", shape, "uint8")  # what the check counted before the pyramid
    refused = run_with(level0 + 1)
    assert refused.exit_code != 0 and "not enough free space" in refused.output, refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]  # refused before anything was written
    image = estimated_bytes("ome-zarr", shape, "uint8")
    assert image > level0
    with_masks = run_with(image, "--masks", str(masks))  # the image fits, not its embedded masks and m.h5
    assert with_masks.exit_code != 0 and "they need about" in with_masks.output, with_masks.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]
    fits = run_with(image)
    assert fits.exit_code == 0, fits.output
    assert out.is_dir()
