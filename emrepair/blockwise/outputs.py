"""The outputs of a blockwise run: the checks before any work (paths against the inputs and each other, disk
space), where the partial outputs live, keeping or discarding them, stamping the run id, committing them into
place, recognising outputs that one run finished already, and the ``--save-report`` summary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.blockwise.job import BlockJob, RunOutcome, RunSettings
from emrepair.errors import EmrepairError, OutputError
from emrepair.io.base import Volume
from emrepair.runstate.progress import ProgressDir


def partial_path(final: str | Path) -> Path:
    """Where the temporary output of a resumable run lives: ``.<name>.emrepair-partial`` beside the output."""
    out = Path(final).expanduser().absolute()
    return out.with_name(f".{out.name}.emrepair-partial")


@contextlib.contextmanager
def keeping_finished_blocks(state: ProgressDir, finals: list[str | None],
                            part: tuple[int, int] | None) -> Iterator[None]:
    """Around writing blocks: an interrupt or an OutputError keeps the partial outputs and their done markers for
    ``--continue``; any other error discards them, unless ``part`` is set (other shares may be writing)."""
    from emrepair.runstate import CONTINUE_HINT, RunDisplaced

    try:
        yield
    except KeyboardInterrupt:
        raise  # the partial output and its done markers stay for --continue
    except RunDisplaced:
        raise  # what is there now belongs to the run that took over
    except OutputError as exc:  # disk full, permissions: the same, with what to do next
        raise OutputError(f"{exc}; finished sections are kept: fix that, then {CONTINUE_HINT}") from exc
    except BaseException:
        if part is None:
            discard(state, finals)
        raise


def discard(state: ProgressDir, finals: list[str | None]) -> None:
    """Remove a run's partial outputs and progress folder (an error that a rerun would meet again)."""
    from emrepair.io.writers.base import remove_path

    with contextlib.suppress(OSError, EmrepairError):
        for final in filter(None, finals):
            remove_path(partial_path(final))
        state.reset()  # the writers' lock stays: this process still holds it


def commit_outputs(job: BlockJob, vol: Volume, provenance: dict[str, Any]) -> None:
    """Reopen the job's partial outputs (masks first), stamp the provenance and move them into place. An
    ``.ome.zarr`` output with masks also gets them as its label image ``labels/synthetic`` (copied from the
    committed masks while the output is finished, before it is moved into place)."""
    from emrepair.runstate import reopen_partial

    for final, temp in ((job.masks, job.masks_temp), (job.output, job.output_temp)):
        if final and temp and not (Path(temp).exists() or Path(temp).is_symlink()) and \
                run_of(final) == (job.run_id or "-"):
            continue  # moved into place already by this run's commit, cut short before its cleanup
        if final and temp:
            labels = final != job.output
            writer = reopen_partial(final, temp, **job.create_kwargs(vol, labels=labels))
            writer.set_attrs({"emrepair": provenance})
            with contextlib.ExitStack() as stack:
                if not labels and job.masks and hasattr(writer, "embed_labels"):
                    stack.callback(writer.release)  # an error before the commit keeps the partial output
                    _embed_masks(stack, writer, job, vol)
                writer.commit()


def _embed_masks(stack: contextlib.ExitStack, writer: Any, job: BlockJob, vol: Volume) -> None:
    """Have the OME-Zarr ``writer`` copy the committed masks of ``job`` into its ``labels/`` at commit."""
    from emrepair.io import open_volume
    from emrepair.io.ome_labels import EMBEDDED_LABELS_NAME

    masks = stack.enter_context(open_volume(job.masks))
    values = job.create_kwargs(vol, labels=True).get("label_values")
    writer.embed_labels(EMBEDDED_LABELS_NAME, masks, values)


def _run_record(final: str | Path | None) -> dict[str, Any] | None:
    """The ``run`` entry ({id, fingerprint}) of the emrepair provenance of the volume at ``final``, or None."""
    from emrepair.io.output_guard import provenance_of

    if not final or not Path(final).exists():
        return None
    run = (provenance_of(Path(final)) or {}).get("run")
    return run if isinstance(run, dict) else None


def run_of(final: str | Path | None) -> str | None:
    """The run id in the emrepair provenance of the volume at ``final``, or None."""
    run = _run_record(final)
    return run.get("id") if run is not None else None


def stamp_run(provenance: dict[str, Any], fingerprint: str) -> str:
    """A new run's id, also written into the provenance its outputs will carry; the caller puts it in the run
    record."""
    import uuid

    run_id = uuid.uuid4().hex
    provenance["run"] = {"id": run_id, "fingerprint": fingerprint}
    return run_id


def outputs_are_run(job: BlockJob) -> bool:
    """Whether every output of ``job`` (image and masks) in place carries ``job.run_id``: its commit was done."""
    return all(run_of(f) == job.run_id for f in (job.output, job.masks) if f)


def already_complete(state: ProgressDir, finals: list[str | None], fingerprint: str, options: RunSettings) -> bool:
    """Whether the outputs are already the complete result of this very run, which ``--continue`` and ``--part``
    then accept as done. A run whose commit moved every output into place but was killed before removing its
    progress folder is recognised by the run id in the outputs' provenance, and its folder removed."""
    outputs = [f for f in finals if f]
    runs = {f: _run_record(f) for f in outputs}  # each output's provenance is read once
    if state.exists():
        record = state.load() or {}
        run_id = record.get("run_id")
        if not run_id or any(partial_path(f).exists() or (runs[f] or {}).get("id") != run_id for f in outputs):
            return False
        with state.lock():
            state.reset()  # the commit was done; only its cleanup was cut short
            writers = state.path / "writers"
            if not writers.is_dir() or not any(writers.iterdir()):
                state.remove()
    if not (options.continue_run or options.part):
        return False
    return all((runs[f] or {}).get("fingerprint") == fingerprint for f in outputs)


def guard_run(inputs: list[str | None], output: str | None, options: RunSettings) -> None:
    """Check every path a blockwise run (fix, upsample-z) writes against its inputs and each other before any work:
    the output and masks with their partial copies and progress folder, and the --save-report file."""
    from emrepair.io.output_guard import guard_outputs, report_of, target
    from emrepair.runstate import progress_dir_for

    resuming = bool(options.continue_run or options.part)
    targets = []
    for flag, final in (("-o", None if options.dry_run else output),
                        ("--masks", None if options.dry_run else options.masks_path)):
        if final:
            also = (partial_path(final), progress_dir_for(final)) if flag == "-o" else (partial_path(final),)
            targets.append(target(flag, final, "volume", also, may_exist=resuming or progress_dir_for(output).exists()))
    summary = options.summary_path
    own = None
    if summary and resuming and output:
        own = report_of(Path(summary).expanduser().absolute())
    same = own is not None and str(own.get("output")) == str(output)
    targets.append(target("--save-report", summary, "json", may_exist=same))
    model = options.model
    extra = [model] if model and Path(model).is_file() else []
    guard_outputs([*inputs, options.report_path, *extra], targets, options.overwrite)


def save_summary(options: RunSettings, result: RunOutcome) -> None:
    """Write ``--save-report`` (replacing only what guard_run allowed: with --overwrite, or this run's own report
    when it continues or is a share)."""
    from emrepair.io.output_guard import report_of, write_json

    if options.summary_path and str(options.summary_path) != "-":
        path = Path(options.summary_path).expanduser().absolute()
        own = report_of(path) if (options.continue_run or options.part) else None
        replace = options.overwrite or (own is not None and str(own.get("output")) == str(result.output))
        write_json(path, result.to_dict(), overwrite=replace)


def check_run_space(vol: Volume, output_path: str, options: RunSettings, out_shape: tuple[int, int, int]) -> None:
    """Refuse, before any work (fix and upsample-z), outputs that will not fit on their disks: the output with its
    pyramid (an ``.ome.zarr``) and the masks copied into it, and the ``--masks`` volume, summed per file system
    (``io.space.check_outputs_space``).
    A resumed run counts what its partial copies hold; one whose output is finished already writes nothing."""
    from emrepair.io.create import output_format
    from emrepair.io.space import PlannedOutput, check_outputs_space

    resuming = bool(options.continue_run or options.part)
    if resuming and Path(output_path).expanduser().exists():
        return  # finished by this run (already_complete), or refused as existing by the writer
    planned = []
    for final in filter(None, (output_path, options.masks_path)):
        path = Path(final).expanduser().absolute()
        labels = final != output_path
        fmt = output_format(path)
        partial = partial_path(final) if resuming and partial_path(final).exists() else None
        planned.append(PlannedOutput(path, fmt, out_shape, np.uint8 if labels else vol.dtype, labels=labels,
                                     embedded_labels=not labels and bool(options.masks_path), partial=partial))
    check_outputs_space(planned)
