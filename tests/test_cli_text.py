"""What the CLI prints and where: no Rich markup in user text or help, results on stdout, messages on stderr,
--json/--report -, --quiet/--verbose/--log-file, plain progress lines off a terminal, and metadata kept exactly."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from helpers import smooth_stack, write_h5
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.cli.progress import PlainProgress, format_duration

runner = CliRunner()
COMMANDS = ("info", "detect", "fix", "upsample-z", "train", "eval", "models", "demo")


def run(*args: str) -> object:
    """Invoke the CLI in-process (stdout and stderr kept apart, neither a terminal)."""
    return runner.invoke(app, list(args))


def stack_h5(tmp_path: Path, name: str = "stack.h5", depth: int = 8, **attrs: object) -> Path:
    """A smooth uint8 stack with a blank section 3 and the given dataset attributes."""
    data = smooth_stack(depth, 32)
    data[3] = 0
    path = Path(write_h5(tmp_path / name, data))
    with h5py.File(path, "r+") as f:
        ds = f[next(iter(f.keys()))]
        for key, value in attrs.items():
            ds.attrs[key] = value
    return path


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_prints_without_traceback(command: str | None) -> None:
    import rich
    import typer

    result = run(*([command] if command else []), "--help")
    assert result.exit_code == 0, (typer.__version__, rich.__version__, result.output)
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    if command == "info":  # a bracketed help text is printed as written, not read as markup
        assert ".h5[/dataset]" in result.output
    if command:
        for option in ("--quiet", "--verbose", "--log-file"):
            assert option in result.output
    else:
        assert "--install-completion" in result.output


def test_bracketed_paths_are_printed_exactly(tmp_path: Path) -> None:
    missing = run("info", str(tmp_path / "missing[/x].h5"))
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.stderr.startswith("error:") and "missing[/x].h5" in missing.stderr
    path = stack_h5(tmp_path, "dmg[red].h5")
    shown = run("info", str(path))
    assert shown.exit_code == 0, shown.output
    assert "dmg[red].h5" in shown.stdout
    found = run("detect", str(path), "--no-progress")
    assert found.exit_code == 0 and "dmg[red].h5" in found.stdout


def test_install_hint_keeps_its_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import emrepair.distributed.executor as executor

    monkeypatch.setattr(executor, "daisy_available", lambda: False, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "daisy", None)
    path = stack_h5(tmp_path)
    result = run("fix", str(path), "-o", str(tmp_path / "o.zarr"), "--model", "linear", "--sections", "3",
                 "--workers", "2", "--executor", "daisy", "--no-progress")
    assert result.exit_code != 0
    assert "emrepair[distributed]" in result.stderr, result.stderr


def test_messages_are_not_wrapped_off_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a_rather_long_folder_name_" * 4) / "and_a_long_file_name_for_the_stack.h5"
    result = run("info", str(deep))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_results_go_to_stdout_and_notes_to_stderr(tmp_path: Path) -> None:
    path = stack_h5(tmp_path)
    info = run("info", str(path))
    assert "uint8" in info.stdout and info.stderr == ""
    models = run("models")
    assert "flowunet" in models.stdout and models.stderr == ""
    detect = run("detect", str(path), "--no-progress")
    assert "missing" in detect.stdout and detect.stderr == ""
    fix = run("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear", "--no-progress")
    assert fix.exit_code == 0, fix.output
    assert "synthesized" in fix.stdout and "Traceback" not in fix.stderr


def test_json_and_reports_on_stdout(tmp_path: Path) -> None:
    path = stack_h5(tmp_path)
    detect = run("detect", str(path), "--json", "--no-progress")
    assert detect.exit_code == 0 and json.loads(detect.stdout)["defects"][0]["z"] == 3
    to_stdout = run("detect", str(path), "--report", "-", "--no-progress")
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["defects"][0]["kind"] == "missing"
    assert not Path("-").exists()
    fix = run("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear", "--json", "--no-progress")
    assert fix.exit_code == 0, fix.output
    record = json.loads(fix.stdout)
    assert 3 in record["synthesized"] and record["model"] == "linear"
    again = run("fix", str(path), "-o", str(tmp_path / "g.h5"), "--model", "linear", "--save-report", "-",
                "--no-progress")
    assert json.loads(again.stdout)["output"].endswith("g.h5") and not Path("-").exists()
    up = run("upsample-z", str(path), "-o", str(tmp_path / "u.h5"), "--factor", "2", "--model", "linear",
             "--no-repair", "--json", "--no-progress")
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["output_shape"][0] == 15


def test_quiet_verbose_and_log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stack_h5(tmp_path, depth=40)
    loud = run("detect", str(path))
    assert "detect: " in loud.stderr and "ETA" in loud.stderr  # plain progress lines without a terminal
    quiet = run("detect", str(path), "--quiet")
    assert quiet.stderr == "" and "missing" in quiet.stdout
    log = tmp_path / "run.log"
    logged = run("detect", str(path), "--log-file", str(log))
    text = log.read_text()
    assert "detect: 40/40 (100%)" in text and "missing" in text and logged.exit_code == 0
    run("info", str(tmp_path / "nope.h5"), "--log-file", str(log))
    assert log.read_text().startswith(text) and "error:" in log.read_text()  # appended, not replaced
    bad_log = run("info", str(path), "--log-file", str(tmp_path / "no" / "such" / "dir.log"))
    assert bad_log.exit_code == 1 and bad_log.stderr.startswith("error:")

    import emrepair.pipelines.detect as detect_pipeline

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(detect_pipeline, "detect_volume", boom)
    plain = run("detect", str(path), "--no-progress")
    assert plain.exit_code == 1 and "Traceback" not in plain.stderr and "--verbose" in plain.stderr
    verbose = run("detect", str(path), "--no-progress", "--verbose")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr and "something unexpected" in verbose.stderr


def test_plain_progress_paces_its_lines() -> None:
    lines: list[str] = []
    now = [0.0]
    progress = PlainProgress("fix", lines.append, clock=lambda: now[0])
    for done in range(1, 201):
        now[0] = done * 0.1
        progress(done, 200)
    assert len(lines) == 20 and lines[-1].startswith("fix: 200/200 (100%)")
    assert lines[0] == "fix: 10/200 (5%), 10/s, elapsed 0:00:01, ETA 0:00:19"
    slow: list[str] = []
    progress = PlainProgress("train", slow.append, clock=lambda: now[0])
    for step in range(1, 4):
        now[0] += 31
        progress(step, 10_000, "loss 0.1000")
    assert len(slow) == 3 and slow[0].endswith("loss 0.1000") and "ETA" in slow[0]  # every 30 s when slow
    tiles: list[str] = []
    progress = PlainProgress("tiles", tiles.append, every_percent=None, clock=lambda: now[0])
    for _ in range(3):
        for done in range(1, 5):
            progress(done, 4)
    assert tiles == []  # tiles of quick sections print nothing
    assert format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "?"


def test_existing_outputs_are_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stack_h5(tmp_path)
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep me")
    import emrepair.detect as detect_module

    calls: list[int] = []
    real = detect_module.detect_volume
    monkeypatch.setattr(detect_module, "detect_volume", lambda *a, **k: calls.append(1) or real(*a, **k))
    for args in (("fix", str(path), "-o", str(out)), ("upsample-z", str(path), "-o", str(out), "--factor", "2"),
                 ("detect", str(path), "--masks", str(out))):
        result = run(*args, "--no-progress")
        assert result.exit_code == 1 and result.stderr.startswith("error: output exists"), result.output
    assert calls == [] and out.read_bytes() == b"keep me"
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "repaired.h5").write_bytes(b"mine")
    demo = run("demo", "-o", str(demo_dir), "--no-progress")  # --overwrite is off by default
    assert demo.exit_code == 1 and "--overwrite" in demo.stderr and (demo_dir / "repaired.h5").read_bytes() == b"mine"


def test_explicit_cuda_without_cuda_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = stack_h5(tmp_path)
    for args in (("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear"),
                 ("eval", str(path), "--model", "linear"), ("train", str(path), "-o", str(tmp_path / "m.pt"))):
        result = run(*args, "--device", "cuda", "--no-progress")
        assert result.exit_code == 2 and "CUDA is not available" in result.stderr, result.output
    assert not (tmp_path / "f.h5").exists() and not (tmp_path / "m.pt").exists()
    auto = run("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear", "--device", "auto",
               "--no-progress")
    assert auto.exit_code == 0, auto.output


CREMI = {"resolution": np.array([40.0, 4.0, 4.0]), "offset": np.array([1000, 0, 0], dtype=np.int64)}
FUNLIB = {"voxel_size": np.array([40, 4, 4], dtype=np.int32), "offset": np.array([1000.0, 8.0, 8.0]),
          "axis_names": np.array(["z", "y", "x"], dtype=h5py.string_dtype()),
          "units": np.array(["nm", "nm", "nm"], dtype=h5py.string_dtype()), "comment": "from the scope",
          "gain": np.float32(1.5)}


@pytest.mark.parametrize("attrs", [CREMI, FUNLIB], ids=["cremi", "funlib"])
def test_input_attributes_are_copied_with_their_types(tmp_path: Path, attrs: dict[str, object]) -> None:
    path = stack_h5(tmp_path, **attrs)
    carried = {k: v for k, v in attrs.items() if k != "resolution"}  # resolution: re-derived from the voxel size
    for name in ("o.h5", "o.zarr", "o.ome.zarr"):
        result = run("fix", str(path), "-o", str(tmp_path / name), "--model", "linear", "--sections", "3",
                     "--no-progress")
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "o.h5", "r") as f:
        ds = f[next(iter(f.keys()))]
        for key, value in carried.items():
            got = ds.attrs[key]
            if isinstance(value, np.ndarray):
                assert isinstance(got, np.ndarray), (key, got)
                assert got.dtype.kind == value.dtype.kind and list(got) == list(value), (key, got)
                if value.dtype.kind in "iuf":
                    assert got.dtype == value.dtype
            else:
                assert got == value and type(got) is type(value) or np.asarray(got).dtype == np.asarray(value).dtype
        assert list(ds.attrs["resolution"]) == [40.0, 4.0, 4.0]
        assert "emrepair" in ds.attrs
    plain = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    array_attrs = dict(plain[next(iter(plain.array_keys()))].attrs) if list(plain.array_keys()) else dict(plain.attrs)
    ome = dict(zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r").attrs)
    for found in (array_attrs, ome):
        for key, value in carried.items():
            expected = np.asarray(value).tolist()
            assert found[key] == expected, (key, found.get(key))
        assert "emrepair" in found


def test_zarr_list_attributes_become_hdf5_arrays(tmp_path: Path) -> None:
    from helpers import write_zarr

    data = smooth_stack(6, 32)
    src = write_zarr(tmp_path / "in.zarr", data)
    node = zarr.open(src, mode="r+")
    node.attrs.update({"voxel_size": [40, 4, 4], "offset": [0, 16, 16], "axis_names": ["z", "y", "x"],
                       "units": ["nm", "nm", "nm"], "extra": {"nested": [1, "a"]}})
    result = run("fix", src, "-o", str(tmp_path / "o.h5"), "--model", "linear", "--sections", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "o.h5", "r") as f:
        ds = f[next(iter(f.keys()))]
        assert ds.attrs["voxel_size"].dtype.kind == "i" and list(ds.attrs["voxel_size"]) == [40, 4, 4]
        assert list(ds.attrs["offset"]) == [0, 16, 16]
        assert [str(v) for v in ds.attrs["axis_names"]] == ["z", "y", "x"]
        assert json.loads(ds.attrs["extra"]) == {"nested": [1, "a"]}  # structured values: JSON text


def test_train_refuses_an_existing_output_and_names_poor_checkpoints(tmp_path: Path) -> None:
    from emrepair.cli.train_checks import warn_not_better_than_linear

    path = stack_h5(tmp_path, depth=12)
    out = tmp_path / "m.pt"
    out.write_bytes(b"old")
    refused = run("train", str(path), "-o", str(out), "--steps", "1", "--device", "cpu", "--no-progress")
    assert refused.exit_code == 1 and "--overwrite" in refused.stderr and out.read_bytes() == b"old"
    said: list[str] = []
    assert warn_not_better_than_linear({"val_psnr": 20.0, "linear_psnr": 21.5}, said.append)
    assert "not better than linear" in said[0] and "21.50" in said[0]
    assert not warn_not_better_than_linear({"val_psnr": 23.0, "linear_psnr": 21.5}, said.append)
    trained = run("train", str(path), "-o", str(out), "--overwrite", "--model", "ssan", "--steps", "1",
                  "--batch-size", "1", "--patch-size", "32", "--device", "cpu", "--no-progress",
                  "--set", "base_channels=4", "--no-detect")
    assert trained.exit_code == 0, trained.output
    assert "wrote" in trained.stdout
    if "validation PSNR" in trained.stdout:  # one random step is not better than linear
        assert "not better than linear" in trained.stderr

    import torch

    meta = torch.load(out, map_location="cpu", weights_only=True)["meta"]
    assert meta["training_data"][0]["train_z"] and 3 in meta["training_data"][0]["train_z"]
    scored = run("eval", str(path), "--model", str(out), "--sections", "3,7", "--device", "cpu", "--no-progress",
                 "--no-detect")
    assert scored.exit_code == 0, scored.output
    # the dropped sections 3 and 7 and their neighbours 4, 6, 8 were training sections; 2 was held out
    assert "m.pt was trained on 4 of the sections scored here (z 3, 4, 6, 8)" in scored.stderr
    clean = run("eval", str(path), "--model", str(out), "--sections", "2", "--gap", "1", "--device", "cpu",
                "--no-progress", "--no-detect")
    assert clean.exit_code == 0 and "trained on" in clean.stderr  # neighbours 1 and 3 are training sections
    fixed = run("fix", str(path), "-o", str(tmp_path / "f.zarr"), "--model", str(out), "--sections", "3",
                "--device", "cpu", "--no-progress")
    assert fixed.exit_code == 0, fixed.output
    assert "model m.pt (ssan)" in fixed.stdout  # a checkpoint is named by its file, not its architecture
    shown = run("info", str(tmp_path / "f.zarr"), "--json")
    assert json.loads(shown.stdout)["emrepair"]["model"] == "m.pt (ssan)"  # in the provenance and info too


def test_overlap_needs_the_same_stack() -> None:
    from emrepair.cli.train_checks import trained_overlap

    meta = {"training_data": [{"file": "stack.h5", "shape": [8, 32, 32], "train_z": [0, 1, 3], "val_sections": [2]}]}
    assert trained_overlap(meta, "/data/stack.h5", (8, 32, 32), {1, 2}) == [1]
    assert trained_overlap(meta, "/data/stack.h5/raw", (8, 32, 32), {2}) == []
    assert trained_overlap(meta, "/data/other.h5", (8, 32, 32), {1}) is None
    assert trained_overlap(meta, "/data/stack.h5", (9, 32, 32), {1}) is None
    old = {"training_data": [{"file": "stack.h5", "shape": [8, 32, 32], "val_sections": [2]}]}  # no train_z
    assert trained_overlap(old, "stack.h5", (8, 32, 32), {1, 2, 5}) == [1, 5]


def test_install_story_in_the_readme_and_pyproject() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = root.joinpath("README.md").read_text()
    head = readme[: readme.index("## Commands")]
    cpu = head.index("download.pytorch.org/whl/cpu")
    assert cpu < head.index("pip install . &&") and "whl/cu" in head  # the PyTorch build comes first
    assert "pip install torch==" in root.joinpath(".ci", "run").read_text()  # CI keeps its CPU install
    pyproject = root.joinpath("pyproject.toml").read_text()
    assert '"daisy>=1.2,<3"' in pyproject


@pytest.mark.parametrize("version", ["1.2.3", "2.0.0"])
def test_daisy_1_and_2_are_driven_by_their_own_api(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from emrepair.distributed.blocks import Block
    from emrepair.distributed.daisy_executor import DaisyExecutor

    calls: dict[str, object] = {}
    fake = types.ModuleType("daisy")
    fake.__version__ = version
    fake.Roi = lambda begin, shape: (begin, shape)
    fake.Task = lambda *args, **kwargs: calls.setdefault("task", kwargs)
    fake.run_blockwise = lambda tasks, **kwargs: calls.setdefault("run", kwargs) is not None
    monkeypatch.setitem(sys.modules, "daisy", fake)
    blocks = [Block(start=i, stop=i + 1) for i in range(3)]
    DaisyExecutor(workers=2).run(blocks, setup=lambda worker: None)
    task = calls["task"]
    if version.startswith("2"):
        assert task["max_workers"] == 2 and "num_workers" not in task
        assert calls["run"] == {"progress": False, "summary": False}  # no tqdm bar, no summary on stdout
    else:
        assert task["num_workers"] == 2 and calls["run"] == {}


def test_every_long_command_prints_plain_progress_off_a_terminal(tmp_path: Path) -> None:
    path = stack_h5(tmp_path, depth=12)
    fix = run("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear", "--sections", "3,7")
    assert "sections: 2/2 (100%)" in fix.stderr and "\r" not in fix.stderr and "\x1b[" not in fix.stderr
    up = run("upsample-z", str(path), "-o", str(tmp_path / "u.h5"), "--factor", "2", "--model", "linear",
             "--no-repair")
    assert "pairs: 11/11 (100%)" in up.stderr, up.stderr
    ev = run("eval", str(path), "--model", "linear", "--sections", "4,8", "--no-detect", "--device", "cpu")
    assert "eval: 2/2 (100%)" in ev.stderr, ev.stderr
    tr = run("train", str(path), "-o", str(tmp_path / "m.pt"), "--model", "ssan", "--steps", "2", "--batch-size",
             "1", "--patch-size", "32", "--set", "base_channels=4", "--no-detect", "--device", "cpu")
    assert tr.exit_code == 0, tr.output
    assert "train: 2/2 (100%)" in tr.stderr and "loss " in tr.stderr, tr.stderr


def test_log_file_gets_plain_lines_while_a_terminal_shows_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.cli.console import err_console

    monkeypatch.setattr(err_console, "_force_terminal", True)
    path = stack_h5(tmp_path, depth=12)
    log = tmp_path / "run.log"
    result = run("detect", str(path), "--log-file", str(log))
    assert result.exit_code == 0, result.output
    text = log.read_text()
    assert "detect: 12/12 (100%)" in text and "\x1b[" not in text  # plain text, no cursor moves or colours
    trained = run("train", str(path), "-o", str(tmp_path / "m.pt"), "--model", "ssan", "--steps", "2",
                  "--batch-size", "1", "--patch-size", "32", "--set", "base_channels=4", "--no-detect",
                  "--device", "cpu", "--log-file", str(log))
    assert trained.exit_code == 0, trained.output
    assert "train: 2/2 (100%)" in log.read_text() and "wrote " in log.read_text()
