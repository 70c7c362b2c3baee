"""Usage errors from the console entry point are one ``error:`` line and exit 2, as the library's errors are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emrepair", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, words", [
    (("fix", "IN", "-o", "OUT", "--tile-size", "0"), "--tile-size"),
    (("fix", "IN", "-o", "OUT", "--workers", "-1"), "--workers"),
    (("fix", "--bogus"), "--bogus"),
    (("detect",), "Missing argument"),
    (("no-such-command",), "no-such-command"),
])
def test_a_usage_error_is_one_line(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    args = tuple(str(tmp_path / a) if a in ("IN", "OUT") else a for a in args)
    done = _run(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_help_and_version_still_work() -> None:
    assert _run("--version").stdout.startswith("emrepair ")
    shown = _run("fix", "-h")
    assert shown.returncode == 0 and "--tile-size" in shown.stdout
