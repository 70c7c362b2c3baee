"""Never lose a lab's data (issue #23 items 5, 3, 10), at the CLI where a user meets it: outputs never replace an
input or something emrepair did not write, one run writes an output at a time, and runs end cleanly after any kill."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import read_all, textured_stack, write_h5, write_zarr
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.distributed import repair
from emrepair.pipelines.fix import partial_path
from emrepair.runstate import progress_dir_for

ROOT = Path(__file__).resolve().parents[1]
FIX = ["--sections", "1,4-5,9", "--model", "linear", "--fold-model", "none", "--no-progress"]


def cli(*args: str) -> object:
    """Invoke the CLI in-process."""
    return CliRunner().invoke(app, list(args))


def fix(src: str, out: Path, *extra: str) -> object:
    """``emrepair fix SRC -o OUT`` with a fast, deterministic repair."""
    return cli("fix", src, "-o", str(out), *FIX, *extra)


def refused(result: object, *words: str, code: int | None = None) -> None:
    """The command failed with one ``error:`` line that says each of ``words``."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[-1], lines[-1]


def digest(path: Path) -> str:
    """A hash of a file, or of every file under a folder (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted([path] if path.is_file() else path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path.parent)).encode() + p.read_bytes())
    return h.hexdigest()


def hidden(folder: Path) -> list[str]:
    """Names emrepair keeps beside its outputs while working (temporary, aside, partial, progress)."""
    return sorted(p.name for p in folder.iterdir() if "emrepair" in p.name and not p.name.endswith(".json"))


@pytest.fixture
def source(tmp_path: Path) -> str:
    return write_zarr(tmp_path / "in.zarr", textured_stack(12, 48), chunks=(2, 32, 32))


@pytest.fixture
def reference(tmp_path: Path, source: str) -> np.ndarray:
    out = tmp_path / "ref.zarr"
    assert fix(source, out).exit_code == 0
    return read_all(out)


# -- 5. nothing of the user's is written but the outputs they name ------------------------------------------------


def test_reports_and_previews_never_touch_the_input(tmp_path: Path, source: str) -> None:
    h5 = Path(write_h5(tmp_path / "in.h5", textured_stack(6, 32)))
    before = digest(h5)
    refused(fix(str(h5), tmp_path / "o.zarr", "--save-report", str(h5)), "--save-report", "is the input")
    refused(cli("detect", str(h5), "--report", str(h5), "--no-progress"), "--report", "is the input")
    refused(cli("upsample-z", str(h5), "-o", str(tmp_path / "u.zarr"), "--factor", "2", "--no-repair", "--model",
                "linear", "--save-report", str(h5), "--no-progress"), "is the input")
    refused(cli("detect", f"{h5}/raw", "--report", str(h5), "--no-progress"), "is the input")
    refused(cli("fix", str(h5), "--in-place", "--sections", "2", "--model", "linear", "--save-report", str(h5),
                "--no-progress"), "is the input")
    assert digest(h5) == before
    zarr_before = digest(Path(source))
    refused(fix(source, tmp_path / "o.zarr", "--save-report", f"{source}/zarr.json"), "inside the input")
    report = tmp_path / "detect.json"
    assert cli("detect", source, "--report", str(report), "--no-progress").exit_code == 0
    report_before = report.read_text()
    refused(cli("fix", source, "-o", str(tmp_path / "o.zarr"), "--report", str(report), "--model", "linear",
                "--save-report", str(report), "--overwrite", "--no-progress"), "is the input")
    assert report.read_text() == report_before
    report.unlink()
    refused(cli("detect", source, "--masks", f"{source}/masks.zarr", "--no-progress"), "inside the input")
    assert digest(Path(source)) == zarr_before
    folder = tmp_path / "sections"
    folder.mkdir()
    for z, section in enumerate(textured_stack(4, 32)):
        import tifffile

        tifffile.imwrite(folder / f"s{z}.tif", section)
    folder_before = digest(folder)
    refused(cli("detect", str(folder), "--preview", str(folder), "--no-progress"), "--preview", "is the input")
    refused(cli("detect", str(folder), "--preview", str(folder / "png"), "--no-progress"), "inside the input")
    refused(fix(str(folder), tmp_path, "--overwrite"), "holds the input")
    assert digest(folder) == folder_before and not hidden(tmp_path)


def test_outputs_may_not_overlap_each_other(tmp_path: Path, source: str) -> None:
    out = tmp_path / "out"
    refused(fix(source, out, "--masks", str(out)), "overlap", code=2)
    refused(fix(source, out, "--save-report", str(out / "run.json")), "overlap", code=2)
    refused(cli("detect", source, "--report", str(tmp_path / "r.json"), "--preview", str(tmp_path / "r.json"),
                "--no-progress"), "overlap", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]


def test_an_existing_report_or_preview_is_replaced_only_with_overwrite(tmp_path: Path, source: str) -> None:
    report, previews = tmp_path / "r.json", tmp_path / "previews"
    assert cli("detect", source, "--report", str(report), "--no-progress").exit_code == 0
    first = report.read_text()
    refused(cli("detect", source, "--report", str(report), "--no-progress"), "exists", "--overwrite")
    assert cli("detect", source, "--report", str(report), "--overwrite", "--no-progress").exit_code == 0
    notes = tmp_path / "notes.json"
    notes.write_text('{"thesis": "chapter 3"}')
    refused(cli("detect", source, "--report", str(notes), "--overwrite", "--no-progress"), "not an emrepair report")
    refused(fix(source, tmp_path / "o.zarr", "--save-report", str(notes), "--overwrite"), "not an emrepair report")
    assert notes.read_text() == '{"thesis": "chapter 3"}' and report.read_text() == first
    previews.mkdir()
    (previews / "z00003_fold.png").write_bytes(b"old preview")
    refused(cli("detect", source, "--preview", str(previews), "--no-progress"), "exists", "--overwrite")
    assert cli("detect", source, "--preview", str(previews), "--overwrite", "--no-progress").exit_code == 0
    assert not (previews / "z00003_fold.png").exists()  # the earlier run's picture went, nothing else was there
    (previews / "plan.txt").write_text("mine")
    refused(cli("detect", source, "--preview", str(previews), "--overwrite", "--no-progress"), "did not write")
    assert (previews / "plan.txt").read_text() == "mine"


def test_overwrite_replaces_only_what_emrepair_wrote(tmp_path: Path, source: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.pdf").write_bytes(b"%PDF four years")
    (victim / "counts.csv").write_text("cell,n\n1,2\n")
    before = digest(victim)
    refused(fix(source, victim, "--overwrite"), "not an emrepair output")
    refused(fix(source, tmp_path / "o.zarr", "--masks", str(victim), "--overwrite"), "not an emrepair output")
    refused(cli("detect", source, "--masks", str(victim), "--overwrite", "--no-progress"), "not an emrepair output")
    foreign = Path(write_h5(tmp_path / "theirs.h5", textured_stack(4, 16)))
    refused(fix(source, foreign, "--overwrite"), "not an emrepair output")
    assert digest(victim) == before and not hidden(tmp_path)
    out = tmp_path / "mine.zarr"
    assert fix(source, out).exit_code == 0
    refused(fix(source, out), "exists", "--overwrite")
    again = fix(source, out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert not hidden(tmp_path)


def test_no_write_follows_a_symbolic_link(tmp_path: Path, source: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / "link.zarr").symlink_to(elsewhere)
    refused(fix(source, tmp_path / "link.zarr", "--overwrite"), "symbolic link")
    target = tmp_path / "precious.json"
    target.write_text('{"version": 1, "input": "x", "shape": [1], "defects": []}')
    (tmp_path / "r.json").symlink_to(target)
    refused(cli("detect", source, "--report", str(tmp_path / "r.json"), "--overwrite", "--no-progress"),
            "symbolic link")
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    refused(fix(source, tmp_path / "o.zarr", "--save-report", str(tmp_path / "dangling.json")), "symbolic link")
    assert os.listdir(elsewhere) == ["keep.txt"] and target.read_text().startswith('{"version"')
    assert not (tmp_path / "nowhere.json").exists() and not (tmp_path / "o.zarr").exists()


# -- 3. one writer per output ---------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path, source: str, reference: np.ndarray,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    original = repair.BlockWriter.write
    seen: list[object] = []

    def meanwhile(self: repair.BlockWriter, block: object) -> None:
        if not seen:  # a second command on the same output while the first is writing it
            seen.extend([fix(source, out, "--overwrite"), fix(source, out, "--continue")])
        original(self, block)

    monkeypatch.setattr(repair.BlockWriter, "write", meanwhile)
    first = fix(source, out)
    assert first.exit_code == 0, first.output
    for second in seen:
        refused(second, "being written by another emrepair run", f"pid {os.getpid()}")
    np.testing.assert_array_equal(read_all(out), reference)
    assert not hidden(tmp_path)


def test_shares_of_one_run_write_together_but_not_the_same_share(tmp_path: Path, source: str,
                                                                 reference: np.ndarray,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    original = repair.BlockWriter.write
    seen: list[object] = []

    def meanwhile(self: repair.BlockWriter, block: object) -> None:
        if not seen:
            seen.append(fix(source, out, "--part", "1/2"))  # the same share again: refused
            seen.append(fix(source, out, "--part", "2/2"))  # the other share: writes beside this one
        original(self, block)

    monkeypatch.setattr(repair.BlockWriter, "write", meanwhile)
    first = fix(source, out, "--part", "1/2")
    assert first.exit_code == 0, first.output
    refused(seen[0], "being written by another emrepair run", "share 1/2")
    assert seen[1].exit_code == 0 and "share done" in seen[1].stderr, seen[1].output
    np.testing.assert_array_equal(read_all(out), reference)
    assert not hidden(tmp_path)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, source: str, reference: np.ndarray,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    monkeypatch.setattr(repair.BlockWriter, "write", lambda self, block: (_ for _ in ()).throw(KeyboardInterrupt))
    assert fix(source, out).exit_code == 130
    monkeypatch.undo()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    tag = "".join(c if c.isalnum() or c == "." else "_" for c in host)
    writers = progress_dir_for(out) / "writers"
    (writers / f"{tag}-{dead.pid}.json").write_text(json.dumps(
        {"pid": dead.pid, "host": host, "host_tag": tag, "part": None, "started": "2026-12-02 01:00:00"}))
    resumed = fix(source, out, "--continue")
    assert resumed.exit_code == 0, resumed.output
    assert "took over" in resumed.stderr and f"pid {dead.pid}" in resumed.stderr
    np.testing.assert_array_equal(read_all(out), reference)
    assert not hidden(tmp_path)


def test_a_live_lock_held_elsewhere_refuses_and_continue_checks_the_run(tmp_path: Path, source: str) -> None:
    out = tmp_path / "out.zarr"
    state = progress_dir_for(out)
    (state / "writers").mkdir(parents=True)
    fd = os.open(state / "writer.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)  # another process's lock (another open file, as a second process has)
    (state / "writers" / "node7-4242.json").write_text(json.dumps(
        {"pid": 4242, "host": "node7", "host_tag": "node7", "part": None, "started": "2026-12-02 01:00:00"}))
    try:
        refused(fix(source, out), "being written by another emrepair run", "pid 4242 on node7")
    finally:
        os.close(fd)
    assert sorted(os.listdir(state)) == ["lock", "writer.lock", "writers"] and not out.exists()  # nothing touched
    shutil.rmtree(state)
    original = repair.BlockWriter.write
    repair.BlockWriter.write = lambda self, block: (_ for _ in ()).throw(KeyboardInterrupt)
    try:
        assert fix(source, out).exit_code == 130
    finally:
        repair.BlockWriter.write = original
    other = cli("fix", source, "-o", str(out), "--sections", "2", "--model", "linear", "--no-progress", "--continue")
    refused(other, "other arguments", "sections", code=2)


# -- 10. runs end cleanly -------------------------------------------------------------------------------------------


def test_continue_or_a_share_on_a_finished_output_is_already_complete(tmp_path: Path, source: str) -> None:
    out = tmp_path / "out.zarr"
    assert fix(source, out).exit_code == 0
    before = digest(out)
    for extra in (["--continue"], ["--part", "2/3"]):
        again = fix(source, out, *extra)
        assert again.exit_code == 0, again.output
        assert "already complete" in again.stderr
    assert digest(out) == before and not hidden(tmp_path)
    other = cli("fix", source, "-o", str(out), "--sections", "2", "--model", "linear", "--no-progress", "--continue")
    refused(other, "exists")
    up = ["upsample-z", source, "-o", str(tmp_path / "up.zarr"), "--factor", "2", "--no-repair", "--model",
          "linear", "--no-progress"]
    assert cli(*up).exit_code == 0
    again = cli(*up, "--continue")
    assert again.exit_code == 0 and "already complete" in again.stderr, again.output
    refused(cli(*up), "exists", "--overwrite")


def test_a_kill_between_the_rename_and_the_cleanup_leaves_a_complete_output(
        tmp_path: Path, source: str, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.runstate import progress

    out = tmp_path / "out.zarr"
    monkeypatch.setattr(progress.ProgressDir, "remove", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    assert fix(source, out, "--masks", str(tmp_path / "m.zarr")).exit_code == 130
    monkeypatch.undo()
    assert out.is_dir() and progress_dir_for(out).is_dir()  # moved into place, cleanup cut short
    again = fix(source, out, "--masks", str(tmp_path / "m.zarr"), "--continue")
    assert again.exit_code == 0 and "already complete" in again.stderr, again.output
    np.testing.assert_array_equal(read_all(out), reference)
    assert not hidden(tmp_path)


def run_killed(args: list[str], patch: str) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process where ``patch`` (Python source) kills it at a chosen moment."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        {textwrap.indent(textwrap.dedent(patch), '        ').strip()}
        from emrepair.cli.app import app
        sys.argv = ["emrepair", *{args!r}]
        app()
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)


def test_a_kill_between_the_two_renames_of_overwrite_leaves_nothing_hidden(tmp_path: Path, source: str) -> None:
    out = tmp_path / "out.zarr"
    assert fix(source, out).exit_code == 0
    args = ["fix", source, "-o", str(out), "--sections", "2,7", "--model", "linear", "--fold-model", "none",
            "--no-progress", "--overwrite"]
    proc = run_killed(args, """
        real = os.replace
        def dying(src, dst, *a, **k):
            real(src, dst, *a, **k)
            if ".old-emrepair-" in str(dst):
                os._exit(137)  # killed between setting the old output aside and moving the new one in
        os.replace = dying
    """)
    assert proc.returncode == 137, proc.stderr.decode()
    assert not out.exists() and any(".old-emrepair-" in name for name in os.listdir(tmp_path))
    resumed = cli(*args[:-1], "--continue")
    assert resumed.exit_code == 0, resumed.output
    with __import__("emrepair.io", fromlist=["open_volume"]).open_volume(out) as vol:
        assert vol.info.attrs["emrepair"]["synthesized_sections"] == [2, 7]
    assert not hidden(tmp_path)


def test_a_displaced_run_says_so_and_exits_non_zero(tmp_path: Path, source: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    original = repair.BlockWriter.write
    record_path = progress_dir_for(out) / "run.json"

    def taken_over(self: repair.BlockWriter, block: object) -> None:
        record = json.loads(record_path.read_text())
        record["run_id"] = "another-run"  # what a run that took the output over leaves
        record_path.write_text(json.dumps(record))
        original(self, block)

    monkeypatch.setattr(repair.BlockWriter, "write", taken_over)
    result = fix(source, out)
    refused(result, "displaced")
    assert result.exit_code == 1 and "share done" not in result.stderr
    assert not out.exists() and partial_path(out).exists()  # the other run's partial output is left to it


def test_worker_processes_die_with_their_parent(tmp_path: Path, source: str) -> None:
    marks = tmp_path / "workers"
    marks.mkdir()
    script = tmp_path / "run_fix.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from emrepair.distributed import repair
        def stuck(self, block):
            open(os.path.join({str(marks)!r}, str(os.getpid())), "w").close()
            time.sleep(600)
        repair.BlockWriter.write = stuck  # also in the spawned workers, which import this script
        if __name__ == "__main__":
            from emrepair.cli.app import app
            sys.argv = ["emrepair", "fix", {source!r}, "-o", {str(tmp_path / "out.zarr")!r}, "--sections", "1,9",
                        "--model", "linear", "--fold-model", "none", "--no-progress", "--workers", "2",
                        "--executor", "process"]
            app()
    """))
    log = open(tmp_path / "log.txt", "wb")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=log, stderr=log)
    try:
        deadline = time.time() + 240
        while len(os.listdir(marks)) < 2 and time.time() < deadline and parent.poll() is None:
            time.sleep(0.5)
        workers = [int(name) for name in os.listdir(marks)]
        assert len(workers) == 2, (tmp_path / "log.txt").read_text()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 20
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
