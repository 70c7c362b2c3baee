"""What the CLI prints and where: no Rich markup in user text or help, results on stdout, messages on stderr,
--json/--report -, --quiet/--verbose/--log-file, and plain progress lines off a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
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


@pytest.mark.parametrize("unit", [None, "micrometer"])
def test_info_lists_ome_levels_with_their_stated_units(tmp_path: Path, unit: str | None) -> None:
    import numpy as np
    import zarr

    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=np.full((4, 64, 64), 7, np.uint8), chunks=(1, 64, 64))
    group.create_array("1", data=np.full((4, 32, 32), 7, np.uint8), chunks=(1, 32, 32))
    axes = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in "zyx"]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.004, 0.004]}]},
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [0.04, 0.008, 0.008]}]}]}]
    shown = run("info", str(tmp_path / "img.ome.zarr"), "--json")
    assert shown.exit_code == 0, shown.output
    levels = json.loads(shown.stdout)["levels"]
    assert [lv["path"] for lv in levels] == ["0", "1"] and levels[1]["shape"] == [4, 32, 32]
    assert levels[1]["scale"] == [0.04, 0.008, 0.008] and levels[0]["units"] == [unit] * 3
    table = run("info", str(tmp_path / "img.ome.zarr")).stdout
    assert "1: 4 x 32 x 32, scale 0.04 x 0.008 x 0.008" in table
    if unit:
        assert "0.008 micrometer" in table
    else:
        assert "no unit in the metadata" in table
