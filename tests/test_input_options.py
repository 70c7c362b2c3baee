"""--skip-unreadable through every command, and bad numbers refused by the library options in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tifffile
from helpers import fail_after, smooth_stack
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.errors import UsageError
from emrepair.io import open_volume
from emrepair.pipelines.options import EngineOptions, RunOptions


@pytest.fixture(autouse=True)
def no_hang():
    """Fail rather than hang when something blocks on the FIFO."""
    with fail_after(60):
        yield


def folder_with_fifo(tmp_path: Path) -> Path:
    folder = tmp_path / "secs"
    folder.mkdir()
    for z, section in enumerate(smooth_stack(6, 32)):
        tifffile.imwrite(folder / f"s{z:02d}.tif", section)
    os.mkfifo(folder / "s02b.tif")  # would be section 3 in name order
    return folder


@pytest.mark.parametrize("command", ["info", "detect", "fix", "upsample-z"])
def test_unreadable_folder_entry_is_an_error_unless_skipped(tmp_path: Path, command: str) -> None:
    folder = folder_with_fifo(tmp_path)
    extra = {"info": [], "detect": ["--no-progress"],
             "fix": ["-o", str(tmp_path / "o.h5"), "--model", "linear", "--sections", "2", "--no-progress"],
             "upsample-z": ["-o", str(tmp_path / "o.h5"), "--factor", "2", "--model", "linear", "--no-repair",
                            "--no-progress"]}[command]
    refused = CliRunner().invoke(app, [command, str(folder), *extra])
    assert refused.exit_code == 1 and not (tmp_path / "o.h5").exists()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "s02b.tif" in lines[0] and "FIFO" in lines[0] and "--skip-unreadable" in lines[0]
    done = CliRunner().invoke(app, [command, str(folder), *extra, "--skip-unreadable"])
    assert done.exit_code == 0, done.stderr
    assert "warning:" in done.stderr and "s02b.tif" in done.stderr
    if command in ("fix", "upsample-z"):
        with open_volume(tmp_path / "o.h5") as vol:
            assert vol.shape[0] == (6 if command == "fix" else 11)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tile_size=0), "--tile-size must be a whole number of at least 1, not 0"),
    (dict(batch_size=0), "--batch-size"),
    (dict(workers=-1), "--workers must be .* not -1"),
    (dict(overlap=-3), "--overlap must be 0 or more"),
    (dict(level=-1), "--level must be 0 or more"),
    (dict(workers=2.5), "--workers"),
])
def test_bad_numbers_are_one_line_usage_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        RunOptions(**kwargs)
    assert "\n" not in str(info.value)


def test_good_numbers_pass() -> None:
    assert RunOptions(tile_size=256, overlap=0, batch_size=1, workers=4, level=0).workers == 4
    assert EngineOptions().tile_size is None
    with pytest.raises(UsageError):
        EngineOptions(tile_size=-5)
    from emrepair.pipelines.fix import FixOptions
    from emrepair.pipelines.upsample import UpsampleOptions

    for cls in (FixOptions, UpsampleOptions):
        with pytest.raises(UsageError, match="--workers"):
            cls(workers=0)


def test_a_huge_sections_range_is_refused_before_it_takes_memory() -> None:
    import tracemalloc

    from emrepair.distributed.plan import parse_sections
    from emrepair.errors import UsageError

    tracemalloc.start()
    with pytest.raises(UsageError, match="more than 1,000,000 sections"):
        parse_sections("0-30000000")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000_000
    assert parse_sections("5,9-11") == [5, 9, 10, 11]


def test_a_huge_factor_is_a_usage_error() -> None:
    from emrepair.pipelines.upsample.plan import resolve_factor

    with pytest.raises(UsageError, match="from 2 to 64"):
        resolve_factor(10**9, None, (40.0, 4.0, 4.0))
    with pytest.raises(UsageError, match="above the largest"):
        resolve_factor(None, 0.001, (40.0, 4.0, 4.0))
    assert resolve_factor(4, None, (40.0, 4.0, 4.0)).factor == 4
