"""The one check every run makes before it reads a pixel: nothing of the user's is written but the outputs named.

``guard_outputs(inputs, targets, overwrite)`` refuses (OutputError / UsageError, one line) an output that is, holds or
lies inside an input (a Zarr or image folder counts as a whole); two outputs that are the same path or nested; an
output, or a path a run writes beside it (progress folder, partial copy, sidecar), that is a symbolic link; an
existing output without ``overwrite``; and, with ``overwrite``, an existing output emrepair did not write (no emrepair
provenance, not an emrepair JSON report, not a folder of emrepair previews). ``write_json`` writes a report
atomically without following a link or, unless told to, replacing a file that appeared meanwhile.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from emrepair.errors import InputError, OutputError, UsageError
from emrepair.io.section_volume import one_line
from emrepair.io.writers.base import recover_leftovers, temp_path_for

# A file that ``emrepair detect --preview`` writes (or its temporary name while writing).
PREVIEW_NAME = re.compile(r"^\.?z\d{5,}_[a-z_-]+(\.tmp-emrepair-.+)?\.png$")
# Keys by which a JSON document is recognised as an emrepair report (detect --report, fix/upsample --save-report).
REPORT_KEYS = ({"version", "input", "shape", "defects"}, {"version", "input", "output", "dry_run"})


@dataclass(frozen=True)
class Target:
    """One output of a run: the option that names it, its path, what it is (``"volume"``, ``"json"`` or
    ``"preview"``), the paths written beside it (``also``), and whether an existing one is the run's own business
    (``may_exist``: a resumable run decides about it itself; with overwrite it must still be emrepair's)."""

    flag: str
    path: Path
    kind: str = "volume"
    also: tuple[Path, ...] = ()
    may_exist: bool = False


def target(flag: str, path: str | Path | None, kind: str = "volume", also: Iterable[Path] = (),
           may_exist: bool = False) -> Target | None:
    """A Target for ``path`` (None when the option was not given or names stdout, ``-``)."""
    if path is None or str(path) in ("", "-"):
        return None
    return Target(flag, Path(path).expanduser().absolute(), kind, tuple(also), may_exist)


def guard_outputs(inputs: Iterable[str | Path | None], targets: Iterable[Target | None], overwrite: bool) -> None:
    """Refuse, before any work, every output that could destroy something of the user's (see the module docstring).

    ``inputs`` are every path the run reads (the volume as given and as resolved, a report, a checkpoint); ``None``
    entries are skipped. Leftovers of killed runs beside a volume output are cleaned up (``recover_leftovers``).
    """
    sources = _input_paths(inputs)
    chosen = [t for t in targets if t is not None]
    for t in chosen:
        for path in (t.path, *t.also):
            if path.is_symlink():
                raise OutputError(f"{t.flag} {path} is a symbolic link; emrepair writes only paths it makes itself "
                                  "(remove the link or name the real path)")
    for i, a in enumerate(chosen):
        for b in chosen[i + 1:]:
            ra, rb = a.path.resolve(), b.path.resolve()
            if ra == rb or ra.is_relative_to(rb) or rb.is_relative_to(ra):
                raise UsageError(f"{a.flag} {a.path} and {b.flag} {b.path} overlap; give each output its own path")
    for t in chosen:
        for path in (t.path, *t.also):
            _check_not_input(t.flag, path, sources)
        _check_folder(t)
    for t in chosen:
        if t.kind == "volume":
            recover_leftovers(t.path)
        _check_existing(t, overwrite)


def made_by_emrepair(path: Path, kind: str = "volume") -> bool:
    """Whether the existing ``path`` is something emrepair wrote (so ``--overwrite`` may replace it)."""
    if path.is_symlink():
        return False
    if kind == "json":
        return report_of(path) is not None
    if kind == "preview":
        return path.is_dir() and all(PREVIEW_NAME.match(name) for name in os.listdir(path))
    if path.is_dir() and not os.listdir(path):
        return True  # an empty folder holds nothing to lose
    return provenance_of(path) is not None


def provenance_of(path: Path) -> dict[str, Any] | None:
    """The ``emrepair`` provenance record of the volume at ``path``, or None (not a volume, or not emrepair's)."""
    from emrepair.io.open import open_volume

    try:
        with open_volume(path) as vol:
            record = vol.info.attrs.get("emrepair")
    except Exception:  # noqa: BLE001 - whatever cannot be read as an emrepair volume is not one
        return None
    return record if isinstance(record, dict) else None


def report_of(path: Path) -> dict[str, Any] | None:
    """The JSON document at ``path`` when it is an emrepair report, else None."""
    try:
        if path.stat().st_size > 256 * 2**20 or not path.is_file():
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and any(keys <= data.keys() for keys in REPORT_KEYS):
        return data
    return None


def write_json(path: str | Path, data: Any, overwrite: bool = False) -> None:
    """Write ``data`` as indented JSON to ``path`` through a temporary file: a symbolic link there is replaced,
    never followed, and without ``overwrite`` a file that appeared meanwhile is left alone (OutputError)."""
    final = Path(path).expanduser().absolute()
    temp = temp_path_for(final)
    try:
        with open(temp, "x") as fh:
            fh.write(json.dumps(data, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(temp, final)
        else:
            os.link(temp, final)  # fails when something is there: never replaces what the run did not check
            os.unlink(temp)
    except FileExistsError:
        _unlink_quietly(temp)
        raise OutputError(f"cannot write {final}: it appeared while emrepair was working (use --overwrite to "
                          "replace it)") from None
    except OSError as exc:
        _unlink_quietly(temp)
        raise OutputError(f"cannot write {final}: {one_line(exc)}") from exc


def prepare_preview_folder(folder: Path) -> None:
    """Make the preview folder (when missing) and remove the previews an earlier run left in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(folder):
            if PREVIEW_NAME.match(name):
                (folder / name).unlink()
    except OSError as exc:
        raise OutputError(f"cannot create preview folder {folder}: {one_line(exc)}") from exc


def _input_paths(inputs: Iterable[str | Path | None]) -> list[tuple[str, Path]]:
    """Every input as (as given, resolved container); an HDF5 or Zarr path with an inner dataset counts as its file."""
    from emrepair.io.paths import locate

    found = []
    for given in inputs:
        if given is None or str(given) == "":
            continue
        path = Path(given).expanduser()
        try:
            path = locate(path).container
        except InputError:
            pass
        if path.exists():
            found.append((str(given), path.resolve()))
            if path.is_file() and path.name.lower().endswith((".tif", ".tiff")):
                sidecar = path.with_name(path.name + ".emrepair.json")
                if sidecar.exists():
                    found.append((str(given), sidecar.resolve()))
    return found


def _check_not_input(flag: str, path: Path, sources: list[tuple[str, Path]]) -> None:
    dst = path.resolve()
    for given, src in sources:
        if dst == src:
            raise OutputError(f"{flag} {path} is the input {given}; emrepair never writes over its input")
        if dst.is_relative_to(src):
            raise OutputError(f"{flag} {path} lies inside the input {given}; emrepair never writes into its input")
        if src.is_relative_to(dst):
            raise OutputError(f"{flag} {path} holds the input {given}; emrepair never replaces its input")


def _check_folder(t: Target) -> None:
    parent = t.path.parent
    if not parent.is_dir():
        raise OutputError(f"{t.flag} {t.path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{t.flag} {t.path}: the folder {parent} is not writable")


def _check_existing(t: Target, overwrite: bool) -> None:
    if not t.path.exists() or (t.may_exist and not overwrite):
        return
    if t.kind == "preview":
        if not t.path.is_dir():
            raise OutputError(f"--preview {t.path} exists and is not a folder")
        if not os.listdir(t.path):
            return
        if not made_by_emrepair(t.path, "preview"):
            raise OutputError(f"--preview {t.path} holds files emrepair did not write; name a new or empty folder")
    elif t.kind == "json" and t.path.is_dir():
        raise OutputError(f"{t.flag} {t.path} is a folder; name a file for the report")
    if not overwrite:
        raise OutputError(f"{t.flag} {t.path} exists (use --overwrite to replace it)")
    if not made_by_emrepair(t.path, t.kind):
        what = {"json": "an emrepair report", "preview": "an emrepair preview folder"}.get(t.kind, "an emrepair output")
        raise OutputError(f"{t.flag} {t.path} is not {what} (no emrepair provenance); --overwrite replaces only "
                          "what emrepair wrote: move it away yourself or choose another path")


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
