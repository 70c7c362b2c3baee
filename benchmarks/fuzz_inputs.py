"""Send malformed inputs through `emrepair info`, `detect`, `fix` and `upsample-z` and check each fails cleanly.

    nice python benchmarks/fuzz_inputs.py --cases 1000 --seed 1 --limit 30

Inputs: formats (HDF5, TIFF, Zarr v2/v3, OME-Zarr, folders of PNG/TIFF) x corruption kinds (mutated bytes, corrupt
chunks, broken array and OME-NGFF metadata, odd arrays, unreadable folder entries, FIFOs and devices, declared but
unwritten sections, corrupt gzip, no permission, markup in paths); see benchmarks/fuzz_cases.py. Every command must
exit 0, or exit 1/2 with exactly one ``error:`` line that is emrepair's own message (an exit-1 message names the
input), within the time limit, and leave the input unchanged. The summary counts each kind of failure:
tracebacks, hangs, internal errors, raw exception text, multi-line errors, silent exits (exit 0 where an error is
required), unnamed entries, changed inputs. Commands run in a worker process that is killed and restarted on a
hang, so a command blocked inside C code cannot stop the fuzzer. tests/test_fuzz_inputs.py runs a few hundred cases.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import Case, makers, snapshot, valid_files  # noqa: E402

COMMANDS = ("info", "detect", "fix", "upsample-z")
FAILURE_KINDS = ("traceback", "hang", "internal", "raw", "multiline", "exit", "silent", "unnamed", "changed")
# Exception text that reached the user as it was, instead of an emrepair message.
RAW = re.compile(r"^[A-Z]\w*(Error|Exception)\b|\[Errno \d+\]|object has no attribute|^unpack requires|^Error -\d")

_WORKER = r"""
import json, sys, traceback, warnings
from typer.testing import CliRunner
from emrepair.cli.app import app
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    args = json.loads(line)
    result = CliRunner().invoke(app, args)
    exc = result.exception
    tb = None
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2000:]
    print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr[-4000:], "traceback": tb}), flush=True)
"""


class Worker:
    """A process running CLI commands in-process one at a time; killed and restarted when one hangs."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        if self._read(120.0) is None:
            raise RuntimeError("the fuzz worker did not start")

    def _read(self, limit_s: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], limit_s)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"exit_code": -1, "stderr": "worker died", "traceback": "worker died"}

    def run(self, args: list[str], limit_s: float) -> dict[str, Any] | None:
        """The command's exit code, stderr and escaped traceback; None when it ran past ``limit_s``."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        result = self._read(limit_s)
        if result is None or result.get("stderr") == "worker died":
            self.close()
        return result

    def close(self) -> None:
        """Stop the worker process (killing it when it is stuck)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def command_args(command: str, case: Case, out: Path) -> list[str]:
    """The CLI arguments of one command on one case (outputs under ``out``, fast weight-free models)."""
    path = str(case.path)
    base = {"info": ["info", path],
            "detect": ["detect", path, "--no-progress"],
            "fix": ["fix", path, "-o", str(out / "fixed.h5"), "--model", "linear", "--fold-model", "none",
                    "--no-progress"],
            "upsample-z": ["upsample-z", path, "-o", str(out / "up.h5"), "--factor", "2", "--model", "linear",
                           "--no-progress"]}[command]
    return base + case.args


def judge(case: Case, result: dict[str, Any] | None) -> str | None:
    """The failure kind of one command's result (see FAILURE_KINDS), or None when it behaved."""
    if result is None:
        return "hang"
    text = result["stderr"]
    if result["traceback"] or "Traceback (most recent call last)" in text:
        return "traceback"
    code = result["exit_code"]
    if code == 0:
        return "silent" if case.must_fail else None
    if code not in (1, 2):
        return "exit"
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("warning:")]
    if len(lines) != 1 or not lines[0].lower().startswith("error:"):
        return "multiline"
    message = lines[0][len("error:"):].strip()
    if message.startswith("internal error"):
        return "internal"
    if RAW.search(message) or (code == 1 and case.path.name not in message):
        return "raw"
    if case.names and case.names not in message:
        return "unnamed"
    return None


def generate(root: Path, count: int, seed: int) -> Iterator[Case]:
    """``count`` bad inputs under ``root``: case i comes from maker i % (number of makers), all seeded."""
    rng = np.random.default_rng(seed)
    valid = valid_files(root / "valid", rng)
    every = makers(root, valid, rng)
    for i in range(count):
        yield every[i % len(every)](i)


def run_cases(root: Path, count: int, seed: int, limit_s: float, commands: tuple[str, ...] = COMMANDS,
              rotate: bool = False) -> tuple[collections.Counter[str], list[str], int]:
    """Generate and run ``count`` cases; return failure counts, failure lines and the number of commands run.

    ``rotate`` runs info and detect on every case but only one of fix / upsample-z (alternating), to save time.
    """
    failures: collections.Counter[str] = collections.Counter()
    lines: list[str] = []
    ran = 0
    worker = Worker()
    out = root / "outputs"
    try:
        for i, case in enumerate(generate(root, count, seed)):
            chosen = commands
            if rotate:
                heavy = [c for c in commands if c in ("fix", "upsample-z")]
                chosen = tuple(c for c in commands if c not in heavy) + ((heavy[i % len(heavy)],) if heavy else ())
            for command in chosen:
                out.mkdir(exist_ok=True)
                before = snapshot(case.path)
                result = worker.run(command_args(command, case, out), limit_s)
                ran += 1
                kind = judge(case, result)
                if kind is None and snapshot(case.path) != before:
                    kind = "changed"
                if kind is not None:
                    failures[kind] += 1
                    detail = "no answer" if result is None else (result["traceback"] or result["stderr"])[-300:]
                    lines.append(f"FAIL {kind} {command} [{case.category}] {case.path.name}: {detail!r}")
                shutil.rmtree(out, ignore_errors=True)
    finally:
        worker.close()
        for p in root.rglob("*"):  # chmod-0 files would stop the temporary folder's removal
            if not p.is_symlink():
                try:
                    p.chmod(0o755 if p.is_dir() else 0o644)
                except OSError:
                    pass
    return failures, lines, ran


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds per command before it counts as a hang")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="comma-separated subset of " + ", ".join(COMMANDS))
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        failures, lines, ran = run_cases(Path(tmp), args.cases, args.seed, args.limit,
                                         tuple(args.commands.split(",")))
    for line in lines:
        print(line)
    summary = ", ".join(f"{failures[k]} {k}" for k in FAILURE_KINDS)
    print(f"{args.cases} cases, {ran} commands in {time.perf_counter() - started:.0f} s: {summary}")
    return 1 if sum(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
